"""
Language names ↔ ISO 639-1 codes for speech APIs.

OpenAI's ``verbose_json`` reports the language as a lowercase English name ("english"), Groq capitalises it
("English"), and self-hosted Whisper servers report the code ("en"). voicecoder keeps codes everywhere.
"""

from __future__ import annotations

__all__ = ["language_code"]

# Whisper's language set: code and English name.
_NAMES = """
en english|zh chinese|de german|es spanish|ru russian|ko korean|fr french|ja japanese|pt portuguese|tr turkish
pl polish|ca catalan|nl dutch|ar arabic|sv swedish|it italian|id indonesian|hi hindi|fi finnish|vi vietnamese
he hebrew|uk ukrainian|el greek|ms malay|cs czech|ro romanian|da danish|hu hungarian|ta tamil|no norwegian
th thai|ur urdu|hr croatian|bg bulgarian|lt lithuanian|la latin|mi maori|ml malayalam|cy welsh|sk slovak
te telugu|fa persian|lv latvian|bn bengali|sr serbian|az azerbaijani|sl slovenian|kn kannada|et estonian
mk macedonian|br breton|eu basque|is icelandic|hy armenian|ne nepali|mn mongolian|bs bosnian|kk kazakh
sq albanian|sw swahili|gl galician|mr marathi|pa punjabi|si sinhala|km khmer|sn shona|yo yoruba|so somali
af afrikaans|oc occitan|ka georgian|be belarusian|tg tajik|sd sindhi|gu gujarati|am amharic|yi yiddish
lo lao|uz uzbek|fo faroese|ht haitian creole|ps pashto|tk turkmen|nn nynorsk|mt maltese|sa sanskrit
lb luxembourgish|my myanmar|bo tibetan|tl tagalog|mg malagasy|as assamese|tt tatar|haw hawaiian|ln lingala
ha hausa|ba bashkir|jw javanese|su sundanese|yue cantonese
"""
_CODES = {
    name: code
    for line in _NAMES.strip().splitlines()
    for code, name in (entry.split(" ", 1) for entry in line.strip().split("|"))
}
_ALIASES = {"mandarin": "zh", "castilian": "es", "flemish": "nl", "haitian": "ht", "burmese": "my", "valencian": "ca"}
_KNOWN_CODES = frozenset(_CODES.values())


def language_code(value: object) -> str | None:
    """
    The ISO 639-1 code for what an API reported: a code ("en", "en-US", "en_us") or a name ("English").

    None for anything else (missing, empty, not a string, or a name this table does not know).
    """
    if not isinstance(value, str) or not value.strip():
        return None
    cleaned = value.strip().lower().replace("_", "-")
    base = cleaned.split("-")[0]
    if base in _KNOWN_CODES:
        return base
    return _CODES.get(cleaned) or _ALIASES.get(cleaned)
