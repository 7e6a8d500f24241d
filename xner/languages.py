"""Language registry: codes, family, script and resource level of every language xner knows.

Studies name languages by code, analyses group them by family and resource level, and
reports print their names; all of that is read from the tables here instead of being
scattered through the code. The table covers

- the 40 WikiANN languages of XTREME's PAN-X task (Hu et al. 2020),
- the 21 languages of the reference study (Manafi & Krishnaswamy 2024) and its 13 pairs,
- every language of the bundled data: WikiANN de en es nl pl ru, the 20 MasakhaNER 2.0
  languages (Adelani et al. 2022) and the 16 MasakhaNEWS languages (Adelani et al. 2023;
  :data:`MASAKHANEWS`, document tasks).

Each language appears once, with its ISO 639-1 code where one exists and its ISO 639-3 code;
lookups accept either (WikiANN names folders by the short code, MasakhaNER by the long one),
so ``get_language("sw") is get_language("swa")``.

Families follow the XTREME/WALS convention (family, then genus), e.g. Indo-European/Romance,
Niger-Congo/Bantu; the two Gbe languages (Ewe, Fon) are grouped under Kwa. Scripts are ISO
15924 codes (``Latn``, ``Cyrl``, ``Arab``, ``Deva``...). Resource level is the number of
training sentences per dataset: ``wikiann_train`` is the train-split size of the Rahimi et al.
(2019) balanced splits (= Hugging Face ``unimelb-nlp/wikiann``, = XTREME PAN-X; checked against
that dataset card's split table: am, ig, ln, rw, so, yo 100, sw 1,000; om, rn and ti absent), and
``masakhaner_train`` the MasakhaNER 2.0 train size; ``None`` where the dataset lacks the language.

>>> get_language("swa").iso1, get_language("sw").masakhaner_train
('sw', 6593)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from xner.errors import one_of

__all__ = [
    "LANGUAGES",
    "MASAKHANEWS",
    "RELATIONS",
    "STUDY_PAIRS",
    "TRAIN_FIELDS",
    "Language",
    "Relation",
    "StudyPair",
    "families",
    "get_language",
    "list_languages",
    "study_pairs",
]


TRAIN_FIELDS: dict[str, str] = {"wikiann": "wikiann_train", "masakhaner2": "masakhaner_train"}
"""Datasets the registry gives train sizes for, and the :class:`Language` field of each."""


@dataclass(frozen=True, slots=True)
class Language:
    """One language: identity, genealogy, script and how much NER training data exists.

    Attributes:
        iso1: ISO 639-1 two-letter code, ``None`` when the language has none (Scots, Fon...).
        iso3: ISO 639-3 three-letter code.
        name: English name.
        family: top-level family (``Indo-European``, ``Niger-Congo``...).
        genus: branch within the family (``Germanic``, ``Bantu``...).
        script: ISO 15924 code of the script the datasets use.
        wikiann_train: WikiANN (Rahimi splits) train sentences, ``None`` if not in WikiANN.
        masakhaner_train: MasakhaNER 2.0 train sentences, ``None`` if not in MasakhaNER.
    """

    iso1: str | None
    iso3: str
    name: str
    family: str
    genus: str
    script: str
    wikiann_train: int | None
    masakhaner_train: int | None

    @property
    def code(self) -> str:
        """The short code datasets and configs use: ISO 639-1 if any, else ISO 639-3."""
        return self.iso1 or self.iso3

    def train_sentences(self, dataset: str) -> int | None:
        """Train-split sentences in ``dataset``; ``None`` where the language is not in it or the
        registry does not describe the dataset (a user's folder): planning and analyses need
        the size without reading the data.

        >>> get_language("yo").train_sentences("masakhaner2")
        6876
        """
        field = TRAIN_FIELDS.get(dataset)
        return getattr(self, field) if field else None


Relation = Literal["genetic", "areal", "borrowing", "control", "genetic+areal"]
"""How an LRL relates to its HRL partner in the reference study."""

RELATIONS: tuple[str, ...] = get_args(Relation)


@dataclass(frozen=True, slots=True)
class StudyPair:
    """One HRL -> LRL transfer pair of the reference study (codes as in :data:`LANGUAGES`).

    >>> STUDY_PAIRS[0].hrl, STUDY_PAIRS[0].lrl, STUDY_PAIRS[0].relation
    ('fr', 'br', 'areal')
    """

    hrl: str
    lrl: str
    relation: Relation
    note: str

    def describe(self) -> dict[str, str]:
        """A flat row with both languages' names, for tables and JSON output."""
        return {
            "hrl": self.hrl,
            "hrl_name": get_language(self.hrl).name,
            "lrl": self.lrl,
            "lrl_name": get_language(self.lrl).name,
            "relation": self.relation,
            "note": self.note,
        }


_IE = "Indo-European"
_NC = "Niger-Congo"
_L = Language

# iso1, iso3, name, family, genus, script, wikiann_train, masakhaner_train
LANGUAGES: tuple[Language, ...] = (
    # Indo-European
    _L("af", "afr", "Afrikaans", _IE, "Germanic", "Latn", 5000, None),
    _L("de", "deu", "German", _IE, "Germanic", "Latn", 20000, None),
    _L("en", "eng", "English", _IE, "Germanic", "Latn", 20000, None),
    _L("nl", "nld", "Dutch", _IE, "Germanic", "Latn", 20000, None),
    _L(None, "sco", "Scots", _IE, "Germanic", "Latn", 100, None),
    _L("an", "arg", "Aragonese", _IE, "Romance", "Latn", 1000, None),
    _L(None, "ast", "Asturian", _IE, "Romance", "Latn", 1000, None),
    _L("ca", "cat", "Catalan", _IE, "Romance", "Latn", 20000, None),
    _L("es", "spa", "Spanish", _IE, "Romance", "Latn", 20000, None),
    _L("fr", "fra", "French", _IE, "Romance", "Latn", 20000, None),
    _L("it", "ita", "Italian", _IE, "Romance", "Latn", 20000, None),
    _L("oc", "oci", "Occitan", _IE, "Romance", "Latn", 100, None),
    _L("pt", "por", "Portuguese", _IE, "Romance", "Latn", 20000, None),
    _L(None, "scn", "Sicilian", _IE, "Romance", "Latn", 100, None),
    _L("bg", "bul", "Bulgarian", _IE, "Slavic", "Cyrl", 20000, None),
    _L("cs", "ces", "Czech", _IE, "Slavic", "Latn", 20000, None),
    _L("pl", "pol", "Polish", _IE, "Slavic", "Latn", 20000, None),
    _L("ru", "rus", "Russian", _IE, "Slavic", "Cyrl", 20000, None),
    _L("sk", "slk", "Slovak", _IE, "Slavic", "Latn", 20000, None),
    _L("br", "bre", "Breton", _IE, "Celtic", "Latn", 1000, None),
    _L("cy", "cym", "Welsh", _IE, "Celtic", "Latn", 10000, None),
    _L("el", "ell", "Greek", _IE, "Greek", "Grek", 20000, None),
    _L("bn", "ben", "Bengali", _IE, "Indic", "Beng", 10000, None),
    _L("hi", "hin", "Hindi", _IE, "Indic", "Deva", 5000, None),
    _L("mr", "mar", "Marathi", _IE, "Indic", "Deva", 5000, None),
    _L("ur", "urd", "Urdu", _IE, "Indic", "Arab", 20000, None),
    _L("fa", "fas", "Persian", _IE, "Iranian", "Arab", 20000, None),
    # Afro-Asiatic
    _L("ar", "ara", "Arabic", "Afro-Asiatic", "Semitic", "Arab", 20000, None),
    _L("he", "heb", "Hebrew", "Afro-Asiatic", "Semitic", "Hebr", 20000, None),
    _L("ha", "hau", "Hausa", "Afro-Asiatic", "Chadic", "Latn", None, 5716),
    _L("am", "amh", "Amharic", "Afro-Asiatic", "Semitic", "Ethi", 100, None),
    _L("ti", "tir", "Tigrinya", "Afro-Asiatic", "Semitic", "Ethi", None, None),
    _L("om", "orm", "Oromo", "Afro-Asiatic", "Cushitic", "Latn", None, None),
    _L("so", "som", "Somali", "Afro-Asiatic", "Cushitic", "Latn", 100, None),
    # Niger-Congo
    _L("rw", "kin", "Kinyarwanda", _NC, "Bantu", "Latn", 100, 7825),
    _L("lg", "lug", "Luganda", _NC, "Bantu", "Latn", None, 4942),
    _L("ny", "nya", "Chichewa", _NC, "Bantu", "Latn", None, 6250),
    _L("sn", "sna", "Shona", _NC, "Bantu", "Latn", None, 6207),
    _L("ln", "lin", "Lingala", _NC, "Bantu", "Latn", 100, None),
    _L("rn", "run", "Kirundi", _NC, "Bantu", "Latn", None, None),
    _L("sw", "swa", "Swahili", _NC, "Bantu", "Latn", 1000, 6593),
    _L("tn", "tsn", "Setswana", _NC, "Bantu", "Latn", None, 3489),
    _L("xh", "xho", "isiXhosa", _NC, "Bantu", "Latn", None, 5718),
    _L("zu", "zul", "isiZulu", _NC, "Bantu", "Latn", None, 5848),
    _L(None, "bbj", "Ghomala", _NC, "Grassfields", "Latn", None, 3384),
    _L("ig", "ibo", "Igbo", _NC, "Volta-Niger", "Latn", 100, 7634),
    _L("yo", "yor", "Yoruba", _NC, "Volta-Niger", "Latn", 100, 6876),
    _L("ee", "ewe", "Ewe", _NC, "Kwa", "Latn", None, 3505),
    _L(None, "fon", "Fon", _NC, "Kwa", "Latn", None, 4343),
    _L("tw", "twi", "Twi", _NC, "Kwa", "Latn", None, 4240),
    _L(None, "mos", "Mossi", _NC, "Gur", "Latn", None, 4532),
    _L("bm", "bam", "Bambara", _NC, "Mande", "Latn", None, 4462),
    _L("wo", "wol", "Wolof", _NC, "Atlantic", "Latn", None, 4593),
    # Nilo-Saharan
    _L(None, "luo", "Dholuo", "Nilo-Saharan", "Nilotic", "Latn", None, 5161),
    # English-based creole
    _L(None, "pcm", "Nigerian Pidgin", "English-based creole", "Creole", "Latn", None, 5646),
    # Austronesian
    _L("id", "ind", "Indonesian", "Austronesian", "Malayo-Polynesian", "Latn", 20000, None),
    _L("jv", "jav", "Javanese", "Austronesian", "Malayo-Polynesian", "Latn", 100, None),
    _L("ms", "msa", "Malay", "Austronesian", "Malayo-Polynesian", "Latn", 20000, None),
    _L("tl", "tgl", "Tagalog", "Austronesian", "Malayo-Polynesian", "Latn", 10000, None),
    # Uralic
    _L("et", "est", "Estonian", "Uralic", "Finnic", "Latn", 15000, None),
    _L("fi", "fin", "Finnish", "Uralic", "Finnic", "Latn", 20000, None),
    _L("hu", "hun", "Hungarian", "Uralic", "Ugric", "Latn", 20000, None),
    # Turkic
    _L("kk", "kaz", "Kazakh", "Turkic", "Kipchak", "Cyrl", 1000, None),
    _L("tr", "tur", "Turkish", "Turkic", "Oghuz", "Latn", 20000, None),
    # Dravidian
    _L("ml", "mal", "Malayalam", "Dravidian", "South Dravidian", "Mlym", 10000, None),
    _L("ta", "tam", "Tamil", "Dravidian", "South Dravidian", "Taml", 15000, None),
    _L("te", "tel", "Telugu", "Dravidian", "South-Central Dravidian", "Telu", 1000, None),
    # Sino-Tibetan
    _L("zh", "zho", "Chinese", "Sino-Tibetan", "Sinitic", "Hani", 20000, None),
    _L("my", "mya", "Burmese", "Sino-Tibetan", "Lolo-Burmese", "Mymr", 100, None),
    # Isolates and small families
    _L("ja", "jpn", "Japanese", "Japonic", "Japanese", "Jpan", 20000, None),
    _L("ko", "kor", "Korean", "Koreanic", "Korean", "Hang", 20000, None),
    _L("ka", "kat", "Georgian", "Kartvelian", "Karto-Zan", "Geor", 10000, None),
    _L("th", "tha", "Thai", "Tai-Kadai", "Tai", "Thai", 20000, None),
    _L("vi", "vie", "Vietnamese", "Austroasiatic", "Vietic", "Latn", 20000, None),
    _L("eu", "eus", "Basque", "Basque", "Basque", "Latn", 10000, None),
)

MASAKHANEWS: tuple[str, ...] = ("amh", "eng", "fra", "hau", "ibo", "lin", "lug", "orm", "pcm", "run", "sna",
                                 "som", "swa", "tir", "xho", "yor")
"""ISO 639-3 codes of the 16 MasakhaNEWS languages (news topic and headline; Adelani et al. 2023)."""

# The reference study's pairs, in the order of its `lang_pairs` (docs/design.md, "Reference study pairs").
STUDY_PAIRS: tuple[StudyPair, ...] = (
    StudyPair("fr", "br", "areal", "Celtic Breton in long contact with French in Brittany"),
    StudyPair("ar", "fa", "borrowing", "Iranian Persian with many Arabic loans, same script"),
    StudyPair("ar", "hi", "control", "borrowing, other script: Arabic loans via Persian"),
    StudyPair("en", "sco", "genetic", "sister Anglic varieties from Middle English"),
    StudyPair("en", "cy", "areal", "Celtic Welsh in long contact with English"),
    StudyPair("es", "ca", "genetic+areal", "neighbouring Romance languages of Spain"),
    StudyPair("cs", "sk", "genetic", "West Slavic, largely mutually intelligible"),
    StudyPair("id", "ms", "genetic", "two standard varieties of Malay"),
    StudyPair("fr", "oc", "genetic+areal", "Gallo-Romance neighbours in France"),
    StudyPair("nl", "af", "genetic", "Afrikaans descends from 17th-century Dutch"),
    StudyPair("it", "scn", "genetic+areal", "Italo-Romance, spoken within Italy"),
    StudyPair("es", "an", "genetic+areal", "Ibero-Romance neighbour in Aragon"),
    StudyPair("es", "ast", "genetic+areal", "Ibero-Romance neighbour in Asturias"),
)

_BY_CODE: dict[str, Language] = {
    code: lang for lang in LANGUAGES for code in (lang.iso1, lang.iso3) if code is not None
}


def get_language(code: str) -> Language:
    """Look a language up by its ISO 639-1 or ISO 639-3 code (case-insensitive).

    Args:
        code: e.g. ``"sw"`` or ``"swa"``.

    Returns:
        The registry entry.

    Raises:
        XnerError: unknown code; the message lists every valid code.

    >>> get_language("NL").name
    'Dutch'
    """
    try:
        return _BY_CODE[code.strip().lower()]
    except KeyError:
        raise one_of("language", code, _BY_CODE) from None


def families() -> list[str]:
    """The language families of the registry, sorted.

    >>> families()[:3]
    ['Afro-Asiatic', 'Austroasiatic', 'Austronesian']
    """
    return sorted({lang.family for lang in LANGUAGES})


def list_languages(family: str | None = None) -> list[Language]:
    """Every registered language, or those of one family (name matched case-insensitively).

    Args:
        family: a name from :func:`families`, or ``None`` for all languages.

    Returns:
        Languages in registry order (grouped by family).

    Raises:
        XnerError: unknown family; the message lists the valid ones.

    >>> [lang.code for lang in list_languages("uralic")]
    ['et', 'fi', 'hu']
    """
    if family is None:
        return list(LANGUAGES)
    wanted = family.strip().lower()
    chosen = [lang for lang in LANGUAGES if lang.family.lower() == wanted]
    if not chosen:
        raise one_of("family", family, families())
    return chosen


def study_pairs(family: str | None = None) -> list[StudyPair]:
    """The reference study's pairs, or those with the HRL or the LRL in one family.

    Args:
        family: a name from :func:`families`, or ``None`` for all 13 pairs.

    Raises:
        XnerError: unknown family.

    >>> [(p.hrl, p.lrl) for p in study_pairs("Austronesian")]
    [('id', 'ms')]
    """
    if family is None:
        return list(STUDY_PAIRS)
    members = {lang.code for lang in list_languages(family)}
    return [pair for pair in STUDY_PAIRS if {pair.hrl, pair.lrl} & members]
