"""Languages of the chat box and e-mails: lower-case ISO 639-1 codes.

Data only, no imports: the server (opensupp.langs re-exports it) and provision's checks read it.
"""

LANGS: tuple[str, ...] = (
    "en", "cs", "sk", "de", "fr", "es", "it", "pl", "hu", "nl", "pt", "ro", "ru", "uk",
    "sv", "da", "fi", "no", "tr", "el", "bg", "hr", "sl", "sr", "lt", "lv", "et", "ja",
    "zh", "ko", "ar", "he", "vi", "id", "th", "ca", "is", "ms", "hi", "fa",
)
