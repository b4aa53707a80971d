"""The golden questions: answerable ones with their expected facts, follow-up pairs, questions the
knowledge base cannot answer, and answer sentences with planted wrong facts.

A fact is a tuple of spellings: the first is written exactly as the document says it (the
``evidence`` sentence, quoted from the document, must contain it); the others are ways a model
may state the same fact ("118 m" for "118 metres", "€35" for "35 euros"). A fact is found in a
text when one of its spellings occurs there as whole words (``bench.answers.states_fact``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Fact = tuple[str, ...]


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    document: str | None  # the key of the document that answers it; None: nothing does
    facts: tuple[Fact, ...] = ()

    @property
    def answerable(self) -> bool:
        return self.document is not None


@dataclass(frozen=True)
class FollowUp:
    """Two questions asked in one conversation; the second refers back to the first."""

    id: str
    first: Question
    follow_up: Question
    passage: str  # words of the passage that should rank first for the follow-up


@dataclass(frozen=True)
class Alteration:
    old: str  # a fact of the true sentence...
    new: str  # ...and what replaces it
    # invented: the new value occurs nowhere in the knowledge base; swapped: it is another
    # fact of the knowledge base (the harder case: the value is in the sources, attached to
    # something else).
    kind: Literal["invented", "swapped"]


@dataclass(frozen=True)
class Claim:
    """A true answer sentence for ``question``, wrong versions of it and paraphrases. The grounding
    check sees each against the passages retrieved for ``question``."""

    question: str
    sentence: str
    alterations: tuple[Alteration, ...]
    paraphrases: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlantedSentence:
    question: str
    text: str
    wrong: bool  # a planted wrong fact: the grounding check should flag it unsupported
    kind: Literal["correct", "paraphrase", "invented", "swapped"]


def euros(amount: str) -> Fact:
    return (f"{amount} euros", f"€{amount}", f"€ {amount}", f"{amount} €", f"EUR {amount}", f"{amount} EUR")


def metres(amount: str) -> Fact:
    return (f"{amount} metres", f"{amount} meters", f"{amount} m", f"{amount}m", f"{amount}-metre")


def q(id: str, text: str, document: str | None, *facts: str | Fact) -> Question:
    return Question(id, text, document, tuple((fact,) if isinstance(fact, str) else fact for fact in facts))


QUESTIONS: tuple[Question, ...] = (
    # Port of Zerelda: Vault and Access Handbook (PDF)
    q("h1", "What is the access code for the Zerelda vault?", "harbor", "HARBOR999CB7"),
    q("h2", "Which code opens the Marlow annex vault?", "harbor", "HARBOR417KD2"),
    q(
        "h3",
        "How often must staff renew their access badges at the Port of Zerelda?",
        "harbor",
        ("45 days", "45-day", "forty-five days"),
    ),
    q("h4", "How much does it cost to replace a lost access badge at the port?", "harbor", euros("35")),
    q(
        "h5",
        "How long is a visitor pass from the harbor gatehouse valid?",
        "harbor",
        ("6 hours", "six hours", "6-hour"),
    ),
    q(
        "h6",
        "How long after opening does the vault door close automatically?",
        "harbor",
        ("90 seconds", "90 s", "ninety seconds"),
    ),
    q("h7", "What is the extension of the harbor's security emergency line?", "harbor", "7734"),
    # Windmere WX-7 Onshore Wind Turbine: Technical Specification (DOCX)
    q("t1", "What is the rotor diameter of the Windmere WX-7?", "turbine", metres("136")),
    q(
        "t2",
        "Above which wind speed does the WX-7 cut out?",
        "turbine",
        ("27 m/s", "27 metres per second", "27 meters per second"),
    ),
    q(
        "t3",
        "What is the cut-in wind speed of the WX-7 turbine?",
        "turbine",
        ("3.1 m/s", "3.1 metres per second", "3.1 meters per second"),
    ),
    q("t4", "How often does the WX-7 need a routine service visit?", "turbine", ("6 months", "six months", "6-month")),
    q("t5", "How much oil does the gearbox of the WX-7 hold?", "turbine", ("780 litres", "780 liters", "780 l")),
    q("t6", "What is the service contract code for the WX-7?", "turbine", "WM-SVC-7781"),
    q("t7", "What is the hub height of the older WX-5 turbine?", "turbine", metres("94")),
    # Brightwater Analytics Employee Handbook (Markdown)
    q(
        "o1",
        "Whose approval does a train ticket above 120 euros need at Brightwater?",
        "handbook",
        ("team lead", "team leader"),
    ),
    q(
        "o2",
        "How much is the meal allowance on travel days at Brightwater?",
        "handbook",
        euros("18.50") + ("18.5 euros",),
    ),
    q(
        "o3",
        "How often is the Brewmatic Q9 coffee machine descaled?",
        "handbook",
        ("40 days", "forty days", "40-day"),
    ),
    q("o4", "How many days per week may Brightwater employees work remotely?", "handbook", ("3 days", "three days")),
    q("o5", "Who must approve flights for Brightwater employees?", "handbook", ("Henrike Osei", "finance director")),
    q("o6", "How often are laptops replaced at Brightwater Analytics?", "handbook", ("4 years", "four years")),
    q(
        "o7",
        "What is the mileage rate for business trips by private car at Brightwater?",
        "handbook",
        euros("0.23") + ("23 cents",),
    ),
    # Lindqvist Veterinary Clinic: Frequently Asked Questions (HTML)
    q(
        "c1",
        "What is the emergency phone number of the Lindqvist Veterinary Clinic?",
        "clinic",
        ("0800-5521", "0800 5521", "08005521"),
    ),
    q(
        "c2",
        "Until what time is the Lindqvist clinic open on Saturdays?",
        "clinic",
        ("13:00", "13.00", "1 pm", "1 p.m.", "1:00 pm", "1:00 p.m."),
    ),
    q("c3", "Who leads the surgical team at the Lindqvist clinic?", "clinic", ("Ingrid Maalouf", "Maalouf")),
    q(
        "c4",
        "How many hours must a pet fast before surgery at the Lindqvist clinic?",
        "clinic",
        ("12 hours", "twelve hours", "12-hour"),
    ),
    q("c5", "How much does a night in the kennel cost at the Lindqvist clinic?", "clinic", euros("29")),
    q("c6", "What does a dental cleaning cost at the Lindqvist clinic?", "clinic", euros("190")),
    # Kettleby Bakery: Production Notes, Spring Season (plain text)
    q(
        "b1",
        "At what temperature is the Kettleby country loaf baked?",
        "bakery",
        ("248 degrees", "248 °C", "248°C", "248 C", "248 ºC"),
    ),
    q("b2", "How long does the Nordhavn rye bake?", "bakery", ("55 minutes", "55 min")),
    q("b3", "Which mill supplies the flour for Kettleby Bakery?", "bakery", ("Mellby Mill", "Mellby")),
    q("b4", "Which batch of cinnamon buns was withdrawn at Kettleby Bakery?", "bakery", "KB-2291"),
    q("b5", "Who is the allergen officer at Kettleby Bakery?", "bakery", ("Tomasz Wierzbicki", "Wierzbicki")),
    q("b6", "What time does the baking shift start at Kettleby Bakery?", "bakery", ("03:45", "3:45", "3.45", "03.45")),
    # Aldermoor Rail Extension: Project Status Report (PDF)
    q("r1", "What is the project code of the Aldermoor Rail Extension?", "rail", "ALD-RX-5530"),
    q(
        "r2",
        "What is the revised budget of the Aldermoor Rail Extension?",
        "rail",
        ("48.6 million", "48.6M", "€48.6", "48.6 m"),
    ),
    q(
        "r3",
        "Which company is the main contractor of the Aldermoor Rail Extension?",
        "rail",
        ("Brannock & Tull", "Brannock and Tull", "Brannock"),
    ),
    q(
        "r4",
        "How many new stations will the Aldermoor Rail Extension have?",
        "rail",
        ("6 new stations", "six new stations", "6 stations", "six stations"),
    ),
    q("r5", "Who is the project director of the Aldermoor Rail Extension?", "rail", ("Sunniva Halvorsen", "Halvorsen")),
    q(
        "r6",
        "How often will trains run at peak times on the Aldermoor line?",
        "rail",
        ("every 7 minutes", "7 minutes", "seven minutes"),
    ),
    # Fennick Audio: Q3 Sales Review (DOCX)
    q("s1", "What was Fennick Audio's revenue in Q3?", "sales", ("3.72 million", "3.72M", "€3.72", "3.72 m")),
    q(
        "s2",
        "What was Fennick Audio's return rate in Q3?",
        "sales",
        ("4.1 percent", "4.1%", "4.1 %", "4.1 per cent"),
    ),
    q("s3", "In which city did Fennick Audio open its new warehouse?", "sales", "Tilburg"),
    q("s4", "Who is the CEO of Fennick Audio?", "sales", ("Marisol Achterberg", "Achterberg")),
    q(
        "s5",
        "When will the Fennick Arc soundbar launch?",
        "sales",
        ("21 November", "November 21", "21st November", "November 21st", "Nov 21", "21 Nov"),
    ),
    q("s6", "What is Fennick Audio's revenue target for Q4?", "sales", ("4.5 million", "4.5M", "€4.5", "4.5 m")),
)


FOLLOW_UPS: tuple[FollowUp, ...] = (
    FollowUp(
        "p1",
        q("p1a", "What is the rated power of the Windmere WX-7?", "turbine", ("4.2 MW", "4.2MW", "4.2 megawatts")),
        q("p1b", "And what is its hub height?", "turbine", metres("118")),
        passage="the hub height of the WX-7 is 118 metres",
    ),
    FollowUp(
        "p2",
        q("p2a", "Who is the Chief of Security at the Port of Zerelda?", "harbor", ("Odalys Verhoeven", "Verhoeven")),
        q("p2b", "And who is her deputy?", "harbor", ("Rainer Castellano", "Castellano")),
        passage="Her deputy, Rainer Castellano",
    ),
    FollowUp(
        "p3",
        q("p3a", "How much does the rabies vaccine cost at the Lindqvist clinic?", "clinic", euros("64")),
        q("p3b", "And the cat flu vaccine?", "clinic", euros("47")),
        passage="The cat flu vaccine costs 47 euros.",
    ),
    FollowUp(
        "p4",
        q(
            "p4a",
            "When is the Aldermoor Rail Extension planned to open?",
            "rail",
            ("14 September 2027", "September 14, 2027", "14th September 2027", "September 14th, 2027"),
        ),
        q("p4b", "How long will the line be?", "rail", ("11.4 km", "11.4 kilometres", "11.4 kilometers")),
        passage="The line will be 11.4 km long",
    ),
    FollowUp(
        "p5",
        q("p5a", "How often is the Old Maud sourdough starter fed?", "bakery", ("12 hours", "twelve hours")),
        q("p5b", "At what temperature is it kept?", "bakery", ("24 degrees", "24 °C", "24°C", "24 C")),
        passage="It is kept at 24 degrees Celsius",
    ),
    FollowUp(
        "p6",
        q("p6a", "What was Fennick Audio's best-selling product in Q3?", "sales", ("Loop S2",)),
        q("p6b", "How much does it cost?", "sales", euros("149")),
        passage="The Fennick Loop S2 costs 149 euros.",
    ),
    FollowUp(
        "p7",
        q(
            "p7a",
            "How many days of paid holiday do full-time Brightwater employees get?",
            "handbook",
            ("27 days", "twenty-seven days"),
        ),
        q("p7b", "And when do unused days expire?", "handbook", ("31 March", "March 31", "31st March", "March 31st")),
        passage="unused days expire on 31 March of the following year",
    ),
    FollowUp(
        "p8",
        q("p8a", "Which tunnel boring machine digs the Aldermoor tunnel?", "rail", ("Greta",)),
        q("p8b", "How far does it advance per day?", "rail", metres("11")),
        passage="Greta advances about 11 metres per day",
    ),
)


# Nothing in the knowledge base answers these; the first seven sit close to a document's topic.
UNANSWERABLE: tuple[Question, ...] = (
    q("u1", "What is the access code for the Bellhaven vault?", None),
    q("u2", "What is the hub height of the Windmere WX-9?", None),
    q("u3", "How much does parking cost at the Lindqvist Veterinary Clinic?", None),
    q("u4", "What was Fennick Audio's revenue in Q1?", None),
    q("u5", "How many weeks of parental leave do Brightwater employees get?", None),
    q("u6", "Which flour does Kettleby Bakery use for its croissants?", None),
    q("u7", "How many parking spaces will Aldermoor Central station have?", None),
    q("u8", "At what temperature does mercury boil?", None),
    q("u9", "Who won the football World Cup in 1998?", None),
    q("u10", "What is the population of the planet Zorvex?", None),
)


def _claim(question: str, sentence: str, *alterations: tuple[str, str, str], paraphrases: tuple[str, ...] = ()):
    return Claim(question, sentence, tuple(Alteration(*alteration) for alteration in alterations), paraphrases)


CLAIMS: tuple[Claim, ...] = (
    _claim(
        "h1",
        "The access code for the Zerelda vault is HARBOR999CB7.",
        ("HARBOR999CB7", "HARBOR998CB7", "invented"),
        ("HARBOR999CB7", "HARBOR417KD2", "swapped"),
        paraphrases=("To open the Zerelda vault, enter the code HARBOR999CB7 [1].",),
    ),
    _claim(
        "h3",
        "Access badges must be renewed every 45 days.",
        ("45 days", "60 days", "invented"),
        ("45 days", "14 days", "swapped"),
        paraphrases=("Staff have to renew their badge at the badge desk every 45 days.",),
    ),
    _claim("h4", "Replacing a lost badge costs 35 euros [1].", ("35 euros", "53 euros", "invented")),
    _claim(
        "h6",
        "The vault door closes automatically 90 seconds after it opens.",
        ("90 seconds", "120 seconds", "invented"),
    ),
    _claim("h7", "The security emergency line is extension 7734.", ("7734", "7120", "swapped")),
    _claim(
        "t1",
        "The rotor diameter of the WX-7 is 136 metres.",
        ("136 metres", "163 metres", "invented"),
        ("136 metres", "101 metres", "swapped"),
        paraphrases=("The rotor of the WX-7 measures 136 metres across.",),
    ),
    _claim("t7", "The WX-5 has a hub height of 94 metres.", ("94 metres", "118 metres", "swapped")),
    _claim(
        "t2",
        "The WX-7 cuts out at a wind speed of 27 m/s.",
        ("27 m/s", "25 m/s", "invented"),
        paraphrases=("When the wind is stronger than 27 m/s, the WX-7 stops.",),
    ),
    _claim(
        "t6",
        "The service contract code for the WX-7 is WM-SVC-7781.",
        ("WM-SVC-7781", "WM-SVC-5140", "swapped"),
        ("WM-SVC-7781", "WM-SVC-7871", "invented"),
    ),
    _claim(
        "o1",
        "Train tickets above 120 euros need approval from the team lead.",
        ("team lead", "finance director", "swapped"),
    ),
    _claim(
        "o2",
        "The meal allowance on travel days is 18.50 euros.",
        ("18.50", "15.50", "invented"),
        paraphrases=("On travel days you get 18.50 euros for meals, without receipts.",),
    ),
    _claim("o3", "The Brewmatic Q9 coffee machine is descaled every 40 days.", ("40 days", "45 days", "swapped")),
    _claim("c1", "The emergency number of the clinic is 0800-5521.", ("0800-5521", "0800-5512", "invented")),
    _claim(
        "c3",
        "Dr. Ingrid Maalouf leads the surgical team.",
        ("Ingrid Maalouf", "Per Lindqvist", "swapped"),
        paraphrases=("The surgical team is led by Dr. Ingrid Maalouf.",),
    ),
    _claim("c5", "A night in the kennel costs 29 euros.", ("29 euros", "21 euros", "swapped")),
    _claim(
        "b1",
        "The country loaf is baked at 248 degrees Celsius for 42 minutes.",
        ("248 degrees", "284 degrees", "invented"),
        ("42 minutes", "55 minutes", "swapped"),
    ),
    _claim("b4", "The cinnamon buns from batch KB-2291 were withdrawn.", ("KB-2291", "KB-2219", "invented")),
    _claim(
        "b5",
        "Tomasz Wierzbicki is the allergen officer at Kettleby Bakery.",
        ("Tomasz Wierzbicki", "Annika Sorlie", "swapped"),
        paraphrases=("Kettleby's allergen officer is Tomasz Wierzbicki [1].",),
    ),
    _claim(
        "r1",
        "The project code of the Aldermoor Rail Extension is ALD-RX-5530.",
        ("ALD-RX-5530", "ALD-RX-5350", "invented"),
    ),
    _claim(
        "r2", "The revised budget of the project is 48.6 million euros.", ("48.6 million", "44.9 million", "swapped")
    ),
    _claim(
        "p4a",
        "The Aldermoor Rail Extension is planned to open on 14 September 2027.",
        ("2027", "2028", "invented"),
        ("14 September", "15 September", "invented"),
    ),
    _claim(
        "s1",
        "Fennick Audio's revenue in Q3 was 3.72 million euros.",
        ("3.72 million", "3.32 million", "swapped"),
        paraphrases=("In the third quarter, Fennick Audio took in 3.72 million euros.",),
    ),
    _claim(
        "s4", "The CEO of Fennick Audio is Marisol Achterberg.", ("Marisol Achterberg", "Dario Pellegrini", "swapped")
    ),
    _claim("s5", "The Fennick Arc soundbar will launch on 21 November.", ("21 November", "12 November", "invented")),
    _claim("r5", "Sunniva Halvorsen is the project director.", ("Halvorsen", "Hallberg", "invented")),
)


def planted_sentences() -> list[PlantedSentence]:
    """Every sentence the grounding check is scored on: each claim's true sentence, its
    paraphrases (both should be supported) and its altered versions (should be flagged)."""
    out = []
    for claim in CLAIMS:
        out.append(PlantedSentence(claim.question, claim.sentence, wrong=False, kind="correct"))
        out += [PlantedSentence(claim.question, text, wrong=False, kind="paraphrase") for text in claim.paraphrases]
        for alteration in claim.alterations:
            text = claim.sentence.replace(alteration.old, alteration.new, 1)
            out.append(PlantedSentence(claim.question, text, wrong=True, kind=alteration.kind))
    return out


def all_questions() -> dict[str, Question]:
    """Every question of the set by its id."""
    found = {question.id: question for question in QUESTIONS + UNANSWERABLE}
    for pair in FOLLOW_UPS:
        found[pair.first.id] = pair.first
        found[pair.follow_up.id] = pair.follow_up
    return found
