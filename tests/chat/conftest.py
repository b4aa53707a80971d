import pytest

from documents.models import Document
from tests.chat.factories import ZORBLAX_PASSAGES, make_document


@pytest.fixture
def zorblax_manual(alice) -> Document:
    return make_document(alice, "Zorblax 3000 manual", ZORBLAX_PASSAGES)
