"""Every sentence Philia says, in one place the shop can edit."""

from __future__ import annotations

MENU = (
    "Hey, welcome to Philia Thrifts! ✨ Reply with a number or just ask me anything:\n"
    "1. Order status\n"
    "2. New drops\n"
    "3. Talk to a human"
)
HANDOFF_CONFIRM = (
    "Got it! A person from the team will jump in here soon 🙋 I'll stay quiet until they're back."
)
QUOTA_HANDOFF = (
    "I've hit my message limit for now, so a person from the team will follow up here soon 🙋"
)
CANNOT_READ_MEDIA = (
    "I can't open photos or stickers, sorry! 🙈 Which piece do you mean? Send me its "
    "SKU (like PT-0001) or its name, or reply 3 to talk to a person."
)
