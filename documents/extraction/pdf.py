"""PDF: the text of each page, one section per page with its page number, read by pypdf
within its limits on the page tree and streams; too many pages, encryption without an empty
user password, and damage each raise ``ExtractionError`` with a message to act on.
"""

from __future__ import annotations

import io

from documents.extraction.common import _SECTION_MIN_CHARS, ExtractionError, Section, _TextBudget, clean_text, log

PDF_DAMAGED = "this PDF is damaged and cannot be read"
PDF_ENCRYPTED = "this PDF is encrypted — remove the password and upload it again"
PDF_TOO_COMPLEX = "this PDF holds more data than kb reads safely from one file (a stream or table past pypdf's limits)"


def _too_many_pages(count: int | None, limit: int) -> ExtractionError:
    counted = f"{count:,} pages" if count is not None else f"more than {limit:,} pages"
    return ExtractionError(
        f"this PDF has {counted}; kb reads at most {limit:,} from one document — split it into smaller files"
    )


def _extract_pdf(data: bytes, budget: _TextBudget) -> list[Section]:
    from pypdf import PdfReader, apply_configuration
    from pypdf.errors import DependencyError, FileNotDecryptedError, LimitReachedError

    max_pages = budget.limits.max_pages
    # pypdf stops walking the page tree past this many entries (pages and the /Pages nodes
    # above them): a file whose /Count lies cannot make it build more page objects than that.
    with apply_configuration(page_tree_maximum_entries=2 * max_pages + 16):
        try:
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted:
                # Many PDFs are "encrypted" with an empty user password only to restrict printing;
                # those open without asking anyone for a password.
                try:
                    opened = reader.decrypt("")
                except (DependencyError, NotImplementedError):
                    opened = 0
                if not opened:
                    raise ExtractionError(PDF_ENCRYPTED)
            declared = _declared_page_count(reader)
            if declared is not None and declared > max_pages:
                raise _too_many_pages(declared, max_pages)
            pages = reader.pages
            count = len(pages)  # walks the page tree, within the limit above
        except ExtractionError:
            raise
        except FileNotDecryptedError:
            raise ExtractionError(PDF_ENCRYPTED) from None
        except LimitReachedError as exc:
            log.info("PDF past a pypdf limit: %s", exc)
            if "page tree" in str(exc):
                raise _too_many_pages(None, max_pages) from None
            raise ExtractionError(PDF_TOO_COMPLEX) from None
        except Exception as exc:  # PdfReadError, and on broken files also ValueError, KeyError, zlib errors...
            log.info("unreadable PDF: %s: %s", type(exc).__name__, exc)
            raise ExtractionError(PDF_DAMAGED) from None
        if count > max_pages:
            raise _too_many_pages(count, max_pages)

        sections = []
        for number in range(1, count + 1):
            try:
                text = pages[number - 1].extract_text() or ""
            except FileNotDecryptedError:
                raise ExtractionError(PDF_ENCRYPTED) from None
            except LimitReachedError as exc:
                log.info("PDF page %d past a pypdf limit: %s", number, exc)
                raise ExtractionError(f"{PDF_TOO_COMPLEX} (page {number})") from None
            except Exception as exc:  # pypdf raises many kinds of errors on broken content streams
                log.info("unreadable PDF page %d: %s", number, exc)
                raise ExtractionError(f"{PDF_DAMAGED} (page {number})") from None
            budget.check(len(text))
            text = clean_text(text)
            if text:
                budget.spend(max(len(text), _SECTION_MIN_CHARS))
                sections.append(Section(text=text, page=number))
    if not sections:
        raise ExtractionError("no text found — scanned PDF?")
    return sections


def _declared_page_count(reader) -> int | None:
    """The page count the file states (``/Count`` of its page tree), read without walking it."""
    try:
        count = reader.root_object["/Pages"].get_object()["/Count"]
        return int(count)
    except Exception:  # missing or malformed: the walk decides
        return None
