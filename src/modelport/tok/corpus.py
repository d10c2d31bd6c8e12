"""The built-in parity corpus: many scripts, code, numbers, whitespace, emoji, odd characters.

Written here for modelport (no third-party text). ``corpus(specials)`` adds lines with the
tokenizer's own special tokens inside text.
"""

from __future__ import annotations

LINES = [
    "",
    "Hello world",
    " Hello world",
    "  two leading spaces, and trailing ones  ",
    "Hello\tworld\twith\ttabs",
    "line one\nline two\r\nline three\n\n\nafter blank lines",
    "multiple     inner     spaces",
    "The quick brown fox jumps over the lazy dog.",
    "THE QUICK BROWN FOX, in CAPITALS and MiXeD cAsE.",
    "Don't stop; it's what we'd've done. They'll see.",
    "Grüße aus München: Straße, Übermaß, Äpfel und Öl.",
    "Le cœur déçu mais l'âme plutôt naïve, Louÿs rêva de crapaüter.",
    "¿Dónde está el niño? ¡Mañana!",
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία.",
    "صِف خَلقَ خَودِ كَمِثلِ الشَمسِ إِذ بَزَغَت",
    "דג סקרן שט בים מאוכזב ולפתע מצא חברה",
    "ऋषियों को सताने वाले दुष्ट राक्षसों के राजा रावण का सर्वनाश करने वाले",
    "我能吞下玻璃而不伤身体。你好，世界！",
    "いろはにほへと ちりぬるを わかよたれそ つねならむ",
    "키스의 고유조건은 입술끼리 만나야 하고 특별한 기술은 필요치 않다.",
    "เป็นมนุษย์สุดประเสริฐเลิศคุณค่า",
    "Tiếng Việt có dấu: Chào thế giới",
    "Emoji: 😀 🎉 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️ 🧑‍💻",
    "Numbers: 0 7 42 1234567890 3.14159 -2.5e-10 1,000,000.00 1_000 0x1F 12:30",
    "Dates 2026-11-23, phone +1 (555) 010-9999, price $19.99 or €5,50",
    "def greet(name: str) -> str:\n    return f\"Hello, {name}!\"  # comment\n",
    "for (let i = 0; i < n; i++) {\n\tconsole.log(arr[i] ?? 'none');\n}",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;",
    "<div class=\"x\">a &amp; b</div> https://example.com/path?q=1&r=2#frag user@example.org",
    "| col | col2 |\n|---|---|\n| **bold** | _it_ |",
    "Punctuation!!! ??? ... --- ;;; ((( ))) [[ ]] {{ }} <<< >>> /// \\\\ @@ ## $$ %% ^^ && **",
    "Unknown and rare: \ue000 \U00020000 \u2028 \u200b zero\u200dwidth a\u0301 \u00a0nbsp",
    "Control chars: bell\x07 escape\x1b end",
    "Combining: e\u0301 n\u0303 o\u0308 and precomposed é ñ ö",
    "Full-width: ＡＢＣ１２３ and ﬁ ligature, ㎏ unit, ① circled",
    "a",
    "  ",
    "\t",
    "\n",
    "x" * 300,
    "antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
]


def long_text() -> str:
    """A long input mixing the lines above (about 12 000 characters)."""
    return " ".join(LINES[1:30]) * 4


def corpus(specials: list[str]) -> list[str]:
    """The built-in corpus, with the tokenizer's special tokens placed inside text."""
    lines = [*list(LINES), long_text()]
    for s in specials[:6]:
        lines += [f"{s}Hello world", f"Hello {s} world", f"before{s}after", f"{s}", f" {s} ",
                  f"text then {s}\nnew line"]
    if len(specials) >= 2:
        lines.append(f"{specials[0]} first {specials[1]} second {specials[0]}{specials[1]}")
    return lines
