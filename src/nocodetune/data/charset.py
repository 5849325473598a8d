"""Which text encoding a file without a BOM is in, judged on the whole file.

UTF-8 is certain when the whole file decodes as UTF-8. Anything else is a guess, and a
guess made on the first kilobytes is how a Turkish file whose first accented letter comes
late, or whose letters exist in several code pages, ends up as mojibake. So:

1. every encoding charset-normalizer knows is tried on the WHOLE file: one byte that an
   encoding cannot decode (or decodes to a control character) rules it out;
2. the survivors read the file's non-ASCII words (all of them, or for files over
   `FULL_EVIDENCE_BYTES` words from windows spread over the whole file) and are scored on
   whether the letters they produce belong to real alphabets, whether a word's letters
   belong to one language ("ţeker ýđdýr" mixes Romanian, Czech and Croatian; "şeker ığdır"
   is Turkish), whether letter case is sane inside words, and whether symbols sit in the
   middle of words;
3. readings that give the same text are one reading (cp1254 and ISO-8859-9 agree on most
   files); a different reading that scores nearly as well is reported as an alternative,
   with a word that shows the difference, so the user can override the choice.

charset-normalizer's own ranking is not used: on short files it prefers cp1250 for
Turkish, French and German text alike, which is the bug this module exists to fix.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

FULL_EVIDENCE_BYTES = 8 << 20  # up to this size every word of the file is evidence
WINDOW_BYTES = 128 << 10  # beyond it, words come from this many bytes ...
WINDOWS = 64  # ... at each of these places spread evenly over the file
MAX_WORDS = 20000  # distinct words scored per reading (the most frequent ones)
SHORTLIST = 8  # readings scored on all their words after a first round on the most frequent ones
SHORTLIST_WORDS = 2000
MIN_SCORE = 1.2  # below this no reading is believable: the bytes are not text in any encoding
MIN_WORD_SCORE = 0.5  # ... nor when most of its words mix alphabets, case or symbols
ALTERNATIVE_MARGIN = 0.25  # readings scoring this close to the best are reported as alternatives
MAX_ALTERNATIVES = 2

# Non-ASCII letters of the languages written in the code pages Python ships (lower case;
# upper case is derived). A word whose letters all belong to one of these is "coherent".
_ALPHABETS: dict[str, str] = {
    "French": "àâæçéèêëîïôœùûüÿ",
    "German": "äöüß",
    "Spanish": "áéíñóúü",
    "Catalan": "àçèéíïòóúü·",
    "Portuguese": "áâãàçéêíóôõú",
    "Italian": "àèéìíîòóùú",
    "Dutch": "áéíóúàèëïöü",
    "Danish/Norwegian": "æøåéóàâô",
    "Swedish": "åäöé",
    "Finnish": "åäöšž",
    "Icelandic": "áðéíóúýþæö",
    "Faroese": "áðíóúýæø",
    "Polish": "ąćęłńóśźż",
    "Czech": "áčďéěíňóřšťúůýž",
    "Slovak": "áäčďéíĺľňóôŕšťúýž",
    "Croatian/Serbian/Slovene": "čćđšž",
    "Hungarian": "áéíóöőúüű",
    "Romanian": "ăâîșşțţ",
    "Turkish": "çğıöşüâîû",
    "Azerbaijani": "çəğıöşü",
    "Estonian": "äöõüšž",
    "Latvian": "āčēģīķļņšūž",
    "Lithuanian": "ąčęėįšųūž",
    "Albanian": "çë",
    "Maltese": "àèìòùċġħż",
    "Welsh": "âêîôûŵŷäëïöüÿáéíóúàèìòù",
    "Esperanto": "ĉĝĥĵŝŭ",
    "Sami": "áčđŋšŧž",
    "Vietnamese": "àáảãạăằắẳẵặâầấẩẫậđèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵ",
    "Russian": "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
    "Ukrainian": "абвгґдеєжзиіїйклмнопрстуфхцчшщьюя",
    "Belarusian": "абвгдеёжзійклмнопрстуўфхцчшыьэюя",
    "Bulgarian": "абвгдежзийклмнопрстуфхцчшщъьюя",
    "Serbian": "абвгдђежзијклљмнњопрстћуфхцчџш",
    "Macedonian": "абвгдѓежзѕијклљмнњопрстќуфхцчџш",
    "Kazakh": "абвгғдеёжзийкқлмнңоөпрстуұүфхһцчшщъыіьэюяә",
    "Greek": "αβγδεζηθικλμνξοπρστυφχψωάέήίόύώϊϋΐΰς",
    "Hebrew": "אבגדהוזחטיךכלםמןנסעףפץצקרשת",
    "Arabic": "ءآأؤإئابةتثجحخدذرزسشصضطظعغفقكلمنهوىيپچژگکیٹڈڑںھےۓـ",
    "Thai": "".join(chr(c) for c in range(0x0E01, 0x0E3B)) + "".join(chr(c) for c in range(0x0E40, 0x0E4F)),
}
# punctuation and signs that every language uses: they neither help nor hurt a reading
_NEUTRAL = set(
    "\u00a0\u00ad«»‹›“”„‘’‚–—…•·°€£¥¢©®™§¶±×÷¿¡½¼¾¹²³µªº†‡‰′″№฿،؛؟٪־׳״\u037e\u0387"
    "\u200b\u200c\u200d\u2009\u202f\u2002\u2003\u2212≤≥≈≠∞√"
)
_PREFERRED = [  # tie-breaker between readings that score alike: what is most often met in files
    "cp1252", "cp1250", "cp1251", "cp1254", "cp932", "shift_jis", "gb18030", "gbk", "gb2312", "big5", "cp950",
    "euc_kr", "cp949", "euc_jp", "cp1253", "cp1255", "cp1256", "cp1257", "cp1258", "koi8_r", "koi8_u",
    "iso8859_15", "iso8859_2", "iso8859_9", "iso8859_5", "iso8859_7", "iso8859_13", "latin_1", "tis_620", "cp874",
    "cp850", "cp437", "cp866", "mac_roman",
    "cp037", "cp500", "cp1140", "cp273", "cp1026", "cp875", "cp424",  # EBCDIC: alike but for a few signs and letters
]
_IN_WORD_OK = set("’‘ʼ'\u00ad\u2010\u2011·\u200b\u200c\u200d")  # signs that may sit between two letters of a word
_LETTER_LANGS: dict[str, frozenset[str]] = {}
for _lang, _letters in _ALPHABETS.items():
    for _ch in _letters:
        for _form in {_ch, _ch.upper(), _ch.title()}:
            if len(_form) == 1 and _form >= "\x80":
                _LETTER_LANGS[_form] = _LETTER_LANGS.get(_form, frozenset()) | {_lang}
_LETTER_LANGS["İ"] = frozenset({"Turkish", "Azerbaijani"})
_NON_LATIN = {"Russian", "Ukrainian", "Belarusian", "Bulgarian", "Serbian", "Macedonian", "Kazakh", "Greek", "Hebrew", "Arabic", "Thai"}
_LATIN_LANGS = frozenset(set(_ALPHABETS) - _NON_LATIN)  # the languages an ASCII letter can belong to

# -- which encodings, and how to try them ------------------------------------------------
_ESCAPE_ENCODINGS = ("iso2022_jp", "iso2022_jp_2", "iso2022_jp_2004", "iso2022_jp_3", "iso2022_jp_ext", "iso2022_kr")
_UNICODE_NO_BOM = ("utf_16_le", "utf_16_be", "utf_32_le", "utf_32_be")


@lru_cache(maxsize=1)
def _codec_lists() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(single-byte encodings, multi-byte encodings) among those charset-normalizer knows."""
    from charset_normalizer.constant import IANA_SUPPORTED

    single: list[str] = []
    multi: list[str] = []
    for name in sorted(set(IANA_SUPPORTED)):
        if name in ("ascii", "hz", "utf_7") or name.startswith(("utf_", "iso2022")):
            continue  # ASCII and the 7-bit ones read as UTF-8; UTF-16/32 are found by their BOM or NULs
        (single if _byte_table(name) is not None else multi).append(name)
    return tuple(single), tuple(multi)


def _ascii_compatible(name: str) -> bool:
    table = _byte_table(name)
    return table is not None and all(table[b] == chr(b) for b in range(128))


@lru_cache(maxsize=None)
def _byte_table(name: str) -> tuple[str | None, ...] | None:
    """What each byte decodes to in a single-byte encoding (None: not decodable); None for multi-byte ones."""
    out: list[str | None] = []
    for b in range(256):
        try:
            text = bytes([b]).decode(name)
        except UnicodeDecodeError:
            out.append(None)
            continue
        if len(text) != 1:
            return None
        out.append(text)
    if sum(c is None for c in out) > 64:  # lead bytes of a multi-byte encoding
        return None
    return tuple(out)


def canonical(name: str) -> str:
    """Python's name for an encoding ('ISO-8859-9' -> 'iso8859-9'); LookupError if unknown or not text."""
    info = codecs.lookup(name)
    if not getattr(info, "_is_text_encoding", True):
        raise LookupError(f"{name} is not a text encoding")
    return info.name


# -- what a character tells -------------------------------------------------------------
_LETTER, _NEUTRAL_KIND, _ODD, _WEAK = 0, 1, 2, 3  # _WEAK: a letter real text rarely uses (half-width katakana)


@lru_cache(maxsize=1)
def _frequent() -> dict[str, frozenset[str]]:
    """The most frequent non-ASCII letters of each language (charset-normalizer's tables), upper case added."""
    from charset_normalizer.constant import FREQUENCIES

    out: dict[str, set[str]] = {}
    for lang, letters in FREQUENCIES.items():
        name = lang.rstrip("—")
        for ch in letters:
            if ch >= "\x80":
                out.setdefault(name, set()).update(f for f in (ch, ch.upper()) if len(f) == 1)
    return {lang: frozenset(chars) for lang, chars in out.items()}


@lru_cache(maxsize=65536)
def _classify(ch: str) -> tuple[int, frozenset[str]]:
    """(kind, languages) of one non-ASCII character."""
    langs = _LETTER_LANGS.get(ch)
    if langs is not None:
        return _LETTER, langs
    if ch in _NEUTRAL:
        return _NEUTRAL_KIND, frozenset()
    cp = ord(ch)
    if 0xFF66 <= cp <= 0xFF9F:  # half-width katakana: what stray Shift-JIS single bytes decode to
        return _WEAK, frozenset({"Japanese"})
    cjk = _cjk_languages(cp, ch)
    if cjk is not None:
        return (_LETTER, cjk) if cjk else (_ODD, frozenset())
    category = unicodedata.category(ch)
    if category.startswith("M"):  # combining marks: accents of cp1258, niqqud, harakat
        if 0x0591 <= cp <= 0x05C7:
            return _LETTER, frozenset({"Hebrew"})
        if 0x0610 <= cp <= 0x061A or 0x064B <= cp <= 0x065F or cp == 0x0670:
            return _LETTER, frozenset({"Arabic"})
        return (_NEUTRAL_KIND, frozenset()) if 0x0300 <= cp <= 0x036F else (_ODD, frozenset())
    if category in ("Nd", "Zs") or 0x3000 <= cp <= 0x303F or 0xFF01 <= cp <= 0xFF65 or 0xFFE0 <= cp <= 0xFFEE:
        return _NEUTRAL_KIND, frozenset()  # digits, spaces, CJK and full-width punctuation
    return _ODD, frozenset()  # a letter of no alphabet above, a rare symbol, private use, unassigned


def _cjk_languages(cp: int, ch: str) -> frozenset[str] | None:
    """Languages a CJK character is common in; an empty set for a rare one; None if not CJK."""
    if 0x3041 <= cp <= 0x30FF and cp != 0x30FB or 0x31F0 <= cp <= 0x31FF:
        return frozenset({"Japanese"})  # kana
    if 0xAC00 <= cp <= 0xD7A3 or 0x3131 <= cp <= 0x318E:
        return frozenset({"Korean"}) if _in_charset(ch, "euc_kr") else frozenset()  # KS X 1001's 2350 syllables
    if 0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0xF900 <= cp <= 0xFAFF:
        langs = set()
        gb = _encoded(ch, "gb2312")
        if gb is not None and 0xB0 <= gb[0] <= 0xF7:
            langs.add("Chinese")
        b5 = _encoded(ch, "big5")
        if b5 is not None and 0xA440 <= int.from_bytes(b5[:2], "big") <= 0xC67E:  # Big5's frequent hanzi
            langs.add("Chinese")
        jis = _encoded(ch, "euc_jp")
        if jis is not None and len(jis) == 2 and 0xB0 <= jis[0] <= 0xF4:  # JIS X 0208 kanji, levels 1 and 2
            langs.add("Japanese")
        ks = _encoded(ch, "euc_kr")
        if ks is not None and 0xCA <= ks[0] <= 0xFD:  # hanja of KS X 1001
            langs.add("Korean")
        return frozenset(langs)
    return None


def _encoded(ch: str, encoding: str) -> bytes | None:
    try:
        return ch.encode(encoding)
    except UnicodeEncodeError:
        return None


def _in_charset(ch: str, encoding: str) -> bool:
    return _encoded(ch, encoding) is not None


# -- the evidence ---------------------------------------------------------------------------
_ASCII = bytes(range(128))
_BYTE_WORD_RE = re.compile(rb"[A-Za-z]*[\x80-\xff][A-Za-z\x80-\xff]*")
_TEXT_WORD_RE = re.compile(r"[A-Za-z]*[^\x00-\x7f\s][^\x00-\x40\x5b-\x60\x7b-\x7f\s]*")
_ASCII_SIGN_IN_WORD_RE = re.compile(r"(?<=[^\W\d_])[#$@\[\\\]^`{|}~<>]+(?=[^\W\d_])")
_NON_ASCII_RE = re.compile(r"[^\x00-\x7f]+")
_C1_OR_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")


def _window_starts(size: int) -> list[int]:
    """Where the evidence windows of a file (or text) of `size` start: all of it when small, else spread to its end."""
    if size <= FULL_EVIDENCE_BYTES:
        return [0]
    return [round(i * (size - WINDOW_BYTES) / (WINDOWS - 1)) for i in range(WINDOWS)]


def _windows(data: bytes) -> list[bytes]:
    if len(data) <= FULL_EVIDENCE_BYTES:
        return [data]
    return [data[i : i + WINDOW_BYTES] for i in _window_starts(len(data))]


def _text_windows(text: str) -> list[str]:
    if len(text) <= FULL_EVIDENCE_BYTES:
        return [text]
    return [text[i : i + WINDOW_BYTES] for i in _window_starts(len(text))]


def _text_words(texts: list[str]) -> Counter[str]:
    words: Counter[str] = Counter()
    for text in texts:
        words.update(_TEXT_WORD_RE.findall(text))
    return words


@dataclass
class _Reading:
    """One encoding's reading of the file: its non-ASCII characters and words, and its score."""

    encoding: str
    chars: Counter[str]
    data: bytes  # the file, whose words are read only when the reading is scored on them
    texts: list[str] | None = None  # the decoded evidence windows, when already decoded
    byte_words: list[tuple[bytes, int]] | None = None  # ASCII-compatible single-byte readings: the file's byte words
    char_score: float = 0.0
    word_score: float = 0.0
    score: float = 0.0
    odd_extra: int = 0  # ASCII signs inside words, counted as odd characters
    _words: Counter[str] | None = None

    def words(self, limit: int = MAX_WORDS) -> list[tuple[str, int]]:
        """The reading's most frequent non-ASCII words with their counts (decoded only as far as asked)."""
        if self.byte_words is not None:
            return [(w.decode(self.encoding), n) for w, n in self.byte_words[:limit]]
        if self._words is None:
            self._words = _text_words(self.texts or [w.decode(self.encoding, errors="replace") for w in _windows(self.data)])
        return self._words.most_common(limit)

    def key(self) -> tuple[tuple[str, int], ...]:
        """Readings with equal keys produce the same text."""
        return tuple(sorted(self.chars.items()))


@dataclass(frozen=True)
class Alternative:
    encoding: str
    chosen_word: str  # a word as the chosen encoding reads it ...
    alternative_word: str  # ... and as this one would

    def describe(self) -> str:
        return f"{self.encoding} ({_short(self.chosen_word)!r} would read {_short(self.alternative_word)!r})"


def _short(word: str, limit: int = 24) -> str:
    return word if len(word) <= limit else word[: limit - 1] + "…"


@dataclass(frozen=True)
class Detection:
    encoding: str
    alternatives: tuple[Alternative, ...] = ()
    guessed: bool = False  # False for UTF-8 and BOMs: nothing to doubt


def _char_score(chars: Counter[str], odd_extra: int = 0) -> float:
    """How believable a reading's characters are, about -2..2.5.

    Known characters (letters of some alphabet, neutral signs) count once, the letters of the
    best single language once more, each language's most frequent letters half; odd characters
    (symbols, letters of no alphabet, rare CJK) count against twice.
    """
    total = sum(chars.values()) + odd_extra
    if not total:
        return 2.5
    known = letters = 0.0
    odd = float(odd_extra)
    by_lang: Counter[str] = Counter()
    frequent = _frequent()
    by_freq: Counter[str] = Counter()
    for ch, n in chars.items():
        kind, langs = _classify(ch)
        if kind == _ODD:
            odd += n
            continue
        if kind == _WEAK:
            odd += n / 2
        known += n
        if kind == _NEUTRAL_KIND:
            by_lang["*"] += n
            continue
        letters += n
        for lang in langs:
            by_lang[lang] += n
        for lang, freq in frequent.items():
            if ch in freq:
                by_freq[lang] += n
    neutral = by_lang.pop("*", 0)
    best_lang = max(by_lang.values(), default=0)
    freq_share = max(by_freq.values(), default=0) / letters if letters else 1.0
    return (known + best_lang + neutral) / total - 2 * odd / total + 0.5 * freq_share


def _word_score(words: list[tuple[str, int]]) -> float:
    """0..1: the share of words whose letters belong to one language, with sane case and no symbol inside."""
    total = good = 0
    for word, n in words:
        total += n
        if _word_is_coherent(word):
            good += n
    return good / total if total else 1.0


def _word_is_coherent(word: str) -> bool:
    common: frozenset[str] | None = None
    prev_lower = False
    prev_letter = False
    for i, ch in enumerate(word):
        if ch < "\x80":
            if ch.isupper() and prev_lower and i > 0 and word[i - 1] >= "\x80":
                return False
            if ch.isalpha():  # a Latin letter: the word is in a Latin-script language
                common = _LATIN_LANGS if common is None else common & _LATIN_LANGS
                if not common:
                    return False
            prev_lower, prev_letter = ch.islower(), ch.isalpha()
            continue
        kind, langs = _classify(ch)
        if kind == _WEAK:
            kind = _LETTER
        if kind == _ODD or (kind == _NEUTRAL_KIND and _odd_inside_word(ch)):
            if prev_letter and i + 1 < len(word) and word[i + 1].isalpha():
                return False  # a symbol inside a word: "don£t"
            prev_lower = prev_letter = False
            continue
        if kind == _LETTER:
            if "\u0e01" <= ch <= "\u0e4e" and not _thai_order_ok(word, i):
                return False
            if ch.isupper() and prev_lower:
                return False  # "pRIVET": lower case then upper case inside a word
            common = langs if common is None else common & langs
            if not common:
                return False
        prev_lower, prev_letter = ch.islower(), kind == _LETTER or ch.isalpha()
    return True


def _thai_order_ok(word: str, i: int) -> bool:
    """Thai spelling order: marks and following vowels come after a consonant, leading vowels before one."""
    ch = word[i]
    prev = word[i - 1] if i else ""
    after_consonant = "\u0e01" <= prev <= "\u0e2e" or prev in _THAI_MARKS
    if ch in _THAI_MARKS or ch in "\u0e30\u0e32\u0e33\u0e45":
        return after_consonant
    if "\u0e40" <= ch <= "\u0e44":
        nxt = word[i + 1] if i + 1 < len(word) else ""
        return "\u0e01" <= nxt <= "\u0e2e"
    return True


_THAI_MARKS = set("\u0e31" + "".join(chr(c) for c in range(0x0E34, 0x0E3B)) + "".join(chr(c) for c in range(0x0E47, 0x0E4F)))


@lru_cache(maxsize=4096)
def _odd_inside_word(ch: str) -> bool:
    """A neutral sign that does not belong between two letters (CJK punctuation does: those scripts use no spaces)."""
    cp = ord(ch)
    if ch in _IN_WORD_OK or 0x3000 <= cp <= 0x303F or 0xFF00 <= cp <= 0xFF65:
        return False
    return not unicodedata.category(ch).startswith("M")


def _prior(encoding: str) -> float:
    try:
        return 0.03 * (1 - _PREFERRED.index(encoding) / len(_PREFERRED))
    except ValueError:
        return -0.01 if encoding.startswith(("cp0", "cp1", "cp2", "cp4", "cp5", "cp7", "cp8", "mac_", "hp_")) else 0.0


def _single_byte_readings(data: bytes) -> list[_Reading]:
    """Single-byte encodings, judged from which bytes the file holds (and how often) and from its byte words.

    One byte is one character, so an encoding decodes the whole file exactly when it decodes
    every byte value present, and its characters' counts are the bytes' counts: the whole
    file is judged without decoding it once per encoding.
    """
    counts = _byte_counts(data)
    high = {b: int(counts[b]) for b in range(128, 256) if counts[b]}
    low_present = [b for b in range(128) if counts[b]]
    byte_words: Counter[bytes] = Counter()
    for window in _windows(data):
        byte_words.update(_BYTE_WORD_RE.findall(window))
    top_words = byte_words.most_common(MAX_WORDS)
    readings = []
    single, _ = _codec_lists()
    for name in single:
        table = _byte_table(name)
        assert table is not None
        chars: Counter[str] = Counter()
        usable = True
        for b in low_present:
            ch = table[b]
            if ch == chr(b):
                continue
            if ch is None or _C1_OR_CONTROL.match(ch):
                usable = False
                break
            if ch >= "\x80":
                chars[ch] += int(counts[b])
        if not usable:
            continue
        for b, n in high.items():
            ch = table[b]
            if ch is None or _C1_OR_CONTROL.match(ch):
                break
            if ch >= "\x80":
                chars[ch] += n
        else:
            ascii_words = top_words if _ascii_compatible(name) else None
            if ascii_words is not None:
                readings.append(_Reading(name, chars, data, byte_words=ascii_words))
                continue
            # EBCDIC and the like: some letters of other code pages become ASCII signs here ("Fran{ais"),
            # which the non-ASCII characters alone would not show
            texts = [w.decode(name) for w in _windows(data)]
            signs = sum(len(_ASCII_SIGN_IN_WORD_RE.findall(t)) for t in texts)
            readings.append(_Reading(name, chars, data, texts=texts, odd_extra=signs))
    return readings


def _multi_byte_readings(data: bytes) -> list[_Reading]:
    """Multi-byte encodings: each must decode the whole file; characters and words come from the evidence windows."""
    _, multi = _codec_lists()
    by_text: dict[str, str] = {}  # Shift-JIS and its Windows and 2004 variants usually read a file alike
    for name in multi:
        try:
            text = data.decode(name)
        except (UnicodeDecodeError, LookupError):
            continue
        if _C1_OR_CONTROL.search(text):
            continue
        kept = by_text.get(text)
        if kept is None or _prior(name) > _prior(kept):
            by_text[text] = name
    readings = []
    for text, name in by_text.items():
        texts = _text_windows(text)
        readings.append(_Reading(name, _char_counts(texts), data, texts=texts))
    return readings


def _byte_counts(data: bytes) -> list[int]:
    """How often each byte value occurs in the file (numpy: a pass in C over many megabytes)."""
    import numpy as np

    return np.bincount(np.frombuffer(data, dtype=np.uint8), minlength=256).tolist()


def _char_counts(texts: list[str]) -> Counter[str]:
    """How often each non-ASCII character occurs in the texts."""
    import numpy as np

    joined = "".join("".join(_NON_ASCII_RE.findall(text)) for text in texts)
    if not joined:
        return Counter()
    points, counts = np.unique(np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32), return_counts=True)
    return Counter({chr(int(p)): int(n) for p, n in zip(points, counts)})


def _example(chosen: _Reading, other: _Reading) -> tuple[str, str] | None:
    """The most frequent word that the two readings read differently in its letters: (chosen's, other's)."""
    fallback = None
    for ours, _ in chosen.words(200):
        try:
            raw = ours.encode(chosen.encoding)
        except UnicodeEncodeError:
            continue
        theirs = raw.decode(other.encoding, errors="replace")
        if theirs == ours or not any(c.isalpha() for c in set(theirs) ^ set(ours)):
            continue
        if "\ufffd" not in theirs:
            return ours, theirs
        fallback = fallback or (ours, theirs)
    return fallback


def detect(data: bytes) -> Detection | None:
    """The best reading of bytes that are neither UTF-8 nor BOM-marked; None if no reading is believable."""
    if b"\x1b" in data and max(data) < 0x80:
        for name in _ESCAPE_ENCODINGS:
            try:
                text = data.decode(name)
            except UnicodeDecodeError:
                continue
            if not _C1_OR_CONTROL.search(text):  # the escapes (and ISO-2022-KR's shift codes) were understood
                return Detection(canonical(name), guessed=True)
        return None
    readings = _single_byte_readings(data) + _multi_byte_readings(data)
    if not readings:
        return None
    groups: dict[tuple[tuple[str, int], ...], _Reading] = {}
    for reading in readings:
        reading.char_score = _char_score(reading.chars, reading.odd_extra)
        key = reading.key()
        kept = groups.get(key)
        if kept is None or _prior(reading.encoding) > _prior(kept.encoding):
            groups[key] = reading
    # a first round on the most frequent words picks the shortlist; the full word set decides
    for reading in groups.values():
        reading.score = reading.char_score + _word_score(reading.words(SHORTLIST_WORDS)) + _prior(reading.encoding)
    distinct = sorted(groups.values(), key=lambda r: r.score, reverse=True)[:SHORTLIST]
    for reading in distinct:
        reading.word_score = _word_score(reading.words())
        reading.score = reading.char_score + reading.word_score + _prior(reading.encoding)
    distinct.sort(key=lambda r: r.score, reverse=True)
    best = distinct[0]
    if best.score < MIN_SCORE or best.word_score < MIN_WORD_SCORE:
        return None
    alternatives = []
    for other in distinct[1:]:
        if other.score >= best.score - ALTERNATIVE_MARGIN and other.score >= MIN_SCORE:
            example = _example(best, other)
            if example is not None:
                alternatives.append(Alternative(canonical(other.encoding), *example))
    return Detection(canonical(best.encoding), tuple(alternatives[:MAX_ALTERNATIVES]), guessed=True)


def detect_unicode_without_bom(data: bytes) -> str | None:
    """UTF-16/32 without a BOM (the file has NUL bytes): the byte order whose text is mostly plain text."""
    best, best_share = None, 0.0
    for name in _UNICODE_NO_BOM:
        if len(data) % (4 if "32" in name else 2):
            continue
        try:
            text = data.decode(name)
        except UnicodeDecodeError:
            continue
        if not text or _C1_OR_CONTROL.search(text):
            continue
        plain = sum(1 for ch in text if ch < "\x80" or _classify(ch)[0] != _ODD)
        share = plain / len(text)
        if share > best_share:
            best, best_share = name, share
    return canonical(best) if best is not None and best_share >= 0.9 else None
