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

# --- The shop's answers (app/services/shop) ------------------------------------------
# Words in {braces} are filled in by code from the database and settings: keep them when
# editing. The scenario checks rely on a few exact phrases: "available", "on hold",
# "waitlist", "sold", "fits like", "true to size".

MENU_REDIRECT = (
    "I'm Philia's shop assistant 🛍️ I can help with pieces, sizes, holds and orders. "
    "Reply with a number or ask me about a piece:\n"
    "1. Order status\n"
    "2. New drops\n"
    "3. Talk to a human"
)
THANKS = "Anytime! 💛 Shout if you need anything else."
SNAG = "Sorry, I hit a snag looking that up 🙈 Reply 3 and a person from the team will help."
DECLINED = "No worries! 😊 Anything else I can help with?"

# How a piece is named, and one line of a list of pieces.
ITEM_NAME = "{title} ({sku})"
ITEM_LINE = "{sku} — {title} — {fit} — {price}"
ITEM_LINE_WITH_STATUS = "{sku} — {title} — {fit} — {price} — {status}"
STATUS_AVAILABLE = "available"
STATUS_RESERVED = "on hold"
STATUS_SOLD = "sold"

# Finding the piece.
ITEM_WHICH = (
    "Which piece do you mean? Send me its SKU (like PT-0001), its name, or share its video 🎥"
)
ITEM_CHOOSE = (
    "I found a few pieces that match:\n{lines}\nWhich one do you mean? Reply with the SKU."
)
VIDEO_CHOOSE = (
    "That video has {count} pieces:\n{lines}\nWhich one are you after? Reply with the SKU or name."
)
VIDEO_UNKNOWN = (
    "I couldn't match that video to a piece in the shop 🤔 Send me the SKU (like PT-0001) or "
    "the piece's name, or reply 3 to talk to a person."
)
SKU_NOT_FOUND = (
    "I can't find {sku} in the shop 🤔 Double-check the SKU, or reply 2 to see the newest drops."
)
ITEM_NO_MATCH = (
    "I couldn't find a piece matching that 🤔 Send me its SKU (like PT-0001), share its "
    "video, or reply 2 to see the newest drops."
)
BROWSE = "Here's what's available right now:\n{lines}\nWant details on one? Send the SKU."
BROWSE_NONE = "No {category} available right now 🥲 Reply 2 to see the newest drops."
SIZE_BROWSE = "Pieces that fit like {size} right now:\n{lines}\nWant details on one? Send the SKU."
SIZE_BROWSE_NONE = (
    "Nothing that fits like {size} is available right now 🥲 Reply 2 to see what's new."
)

PHOTO = "Here's {item} 📸"
PHOTO_NONE = (
    "I don't have more photos of {item} here 🙈 Reply 3 and a person from the team can send some."
)

# Availability.
AVAILABLE = (
    "Yes! {item} is still available ✨\n{price} · {fit}{for_you}\n"
    "Want me to hold it for you for {hold_hours} h? Just reply HOLD."
)
RESERVED_FOR_OTHER = (
    "{item} is on hold for someone else right now ⏳\n"
    "Want to join the waitlist? Reply WAITLIST and I'll message you here if it frees up."
)
RESERVED_FOR_YOU = "{item} is on hold for you until {until} ✅\n{checkout}"
SOLD = "Sorry, {item} is sold 😢"
SOLD_ALTERNATIVES = "Similar pieces still available:\n{lines}\nWant details on one? Send the SKU."
SOLD_NO_ALTERNATIVES = "Reply 2 to see the newest drops 🛍️"

# Holds and the waitlist.
HOLD_DONE = "Done! {item} is on hold for you until {until} ⏳ ({price})\n{checkout}"
HOLD_LIMIT = (
    "You already have {count} pieces on hold ({skus}), that's the max for now. Check out "
    "one of them first, or reply 3 to talk to a person."
)
HOLD_TAKEN_WAITLISTED = (
    "So close! {item} is on hold for someone else right now, so I've added you to its "
    "waitlist (#{position} in line) 🔔 I'll message you here if it frees up."
)
HOLD_RELEASED = "Done, I've let go of {item} ✅ It's back on sale for everyone."
HOLD_RELEASE_NONE = "You don't have any pieces on hold right now 🙂"
HOLD_RELEASE_WHICH = "You have {skus} on hold. Which one should I let go? Send its SKU."
HOLD_RELEASE_NOT_YOURS = "{sku} isn't on hold for you, so there's nothing to cancel 🙂"
HOLD_WHICH = "Which piece should I hold? Send me its SKU (like PT-0001) or its name."
WAITLIST_JOINED = (
    "You're on the waitlist for {item} (#{position} in line) 🔔 I'll message you here if it "
    "frees up."
)
WAITLIST_ALREADY = "You're already on the waitlist for {item} (#{position} in line) 🔔"
WAITLIST_WHICH = "Which piece do you want to wait for? Send me its SKU (like PT-0005)."
WAITLIST_SOLD = "Update on {item}: it just sold, sorry 😢 Reply 2 to see the newest drops 🛍️"
SALE_CONFIRMED = (
    "Payment received, thank you! 🎉 {item} is officially yours (order {order}). "
    "Ask me about {order} anytime for its status 📦"
)
HOLD_REMINDER = (
    "Heads-up ⏳ {item} is on hold for you until {until} ({price}), then it goes back on sale.\n"
    "{checkout}\nChanged your mind? Reply CANCEL HOLD and I'll let it go."
)
WAITLIST_NOTICE = (
    "Good news! {item} is available again ✨ {price}\n"
    "You were first on the waitlist: reply HOLD {sku} to grab it before someone else does."
)

# Sizing.
SIZE_TAG_DIFFERS = (
    "{item}: the tag says {tag}, but it measures {measurements}, so it fits like {fit}."
)
SIZE_TAG_MATCHES = (
    "{item}: the tag says {tag} and it measures {measurements}, so it fits like {fit}, "
    "same as the tag."
)
SIZE_SELLER_ONLY = "{item}: the tag says {tag}, but it fits like {fit} (the seller checked it)."
SIZE_TAG_ONLY = (
    "{item}: the tag says {tag}. I don't have its measurements yet, so reply 3 and a person "
    "can measure it for you."
)
SIZE_WAIST = "{item}: the tag says {tag}, and it measures {measurements}."
SIZE_SHOE = "{item}: it's a US {size}{tag_note}."
SIZE_SHOE_TAG_NOTE = " (the tag says {tag})"
SIZE_ONE_SIZE = "{item}: it's one size."
SIZE_UNKNOWN = (
    "{item}: I don't have its size details yet, so reply 3 and a person can measure it for you."
)
SIZE_NOTE = "Seller's note: {notes}"
CONDITION = "Condition: {condition}."
SIZE_HOLD_OFFER = "Want me to hold it for you? Just reply HOLD."
SIZE_HEADS_UP_SOLD = "Heads-up: it's already sold."
SIZE_HEADS_UP_RESERVED = "Heads-up: it's on hold for someone else right now."
SIZE_WHICH = "Which piece do you want sizing for? Send me its SKU (like PT-0001) or its name 📏"
SIZE_NOTED = (
    "Noted: you're usually {size} 📝 Send me a piece's SKU or name and I'll tell you how it "
    "fits you."
)
FIT_TRUE = "You're usually {size}, so it should fit true to size ✅"
FIT_RELAXED = "You're usually {size}, so it'll fit relaxed/oversized on you."
FIT_SHOE_ROOMY = "You're usually {size}, so they'll be a little roomy on you."
FIT_SNUG = "You're usually {size}, so it'll fit snug on you."
FIT_WONT = "You're usually {size}, so it probably won't fit you 😕"
FOR_YOU_TRUE = " · true to size for you"
FOR_YOU_RELAXED = " · relaxed/oversized on you"
FOR_YOU_SNUG = " · snug on you"
FOR_YOU_WONT = " · probably too {direction} for you"
# How sizes and fits are written inside the sentences above.
FIT_LETTER = "fits like {size}"
FIT_WAIST = "{waist} in waist"
FIT_SHOE = "US {size}"
FIT_ONE_SIZE = "one size"
FIT_UNKNOWN = "tag {tag}"
MEASURE_PIT = "{pit} in pit to pit"
MEASURE_LENGTH = "{length} in long"
MEASURE_WAIST = "{waist} in around the waist"
MEASURE_INSEAM = "{inseam} in inseam"
OWN_LETTER = "{article} {size}"
OWN_WAIST = "a {size} in waist"
OWN_SHOE = "a US {size}"

# Price.
PRICE = "{item} is {price} ({status})."
PRICE_HOLD_OFFER = " Want me to hold it? Just reply HOLD."
PRICE_OFFER = "{item} is {price}. {offer_policy}"
PRICE_WHICH = (
    "Which piece do you mean? Send me its SKU (like PT-0001) or its name and I'll check the price 🏷️"
)

# Policy (the answers themselves are the shop's FAQ entries).
POLICY_UNKNOWN = (
    "Good question! I don't want to guess, so a person from the team will confirm. "
    "Reply 3 to talk to them 🙋"
)

# Orders.
ORDER_PAID = "Order {number}: paid ✅ We're getting it ready to ship."
ORDER_PROCESSING = "Order {number}: processing 📦 We're packing it, tracking comes when it ships."
ORDER_SHIPPED = "Order {number}: shipped 🚚 on {shipped}{tracking}"
ORDER_SHIPPED_TRACKING = " with {carrier}, tracking number {tracking_number}"
ORDER_DELIVERED = "Order {number}: delivered 🎉 on {delivered}{tracking}"
ORDER_CANCELLED = "Order {number}: cancelled. Questions? Reply 3 to talk to a person."
ORDER_ITEMS = "Items: {items}"
ORDER_LIST = "Here are your orders:\n{lines}\nSend an order number for the details."
ORDER_LIST_LINE = "{number} — {status} — placed {placed}{tracking}"
# Beside an order answer when the customer sounds upset.
UPSET_OFFER_PERSON = (
    "I'm sorry about the wait 🙏 If you'd like a person from the team to look into it, reply 3."
)
ORDER_NONE = (
    "I don't see any orders on this account yet 🤔 What's your order number? "
    "It looks like PH-12345."
)
ORDER_NOT_FOUND = (
    "I couldn't find order {number} on your account 🤔 Double-check the number (it looks like "
    "PH-12345), or reply 3 and a person will look into it."
)
# After too many order numbers that are not the customer's: no {number}, so the answer is
# the same whatever was asked, and a person takes the conversation.
ORDER_LOOKUP_PAUSED = (
    "I can't look up any more order numbers in this chat right now 🙏 A person from the team "
    "will check your order and reply here soon."
)

# New drops.
NEW_DROPS = "Fresh in 🔥 our newest pieces:\n{lines}\nAsk me about any of them by SKU!"
NEW_DROPS_ALERTS_OFFER = "\nWant a DM when new pieces in your size land? Reply ALERTS 🔔"
ALERTS_ON = (
    "Done! 🔔 I'll message you here when new {what} land. At most one message a day, never at "
    "night, and only while our chat is open (TikTok allows 48 h after your last message). "
    "Reply STOP anytime to stop."
)
ALERTS_ALREADY = "You're already set for alerts on new {what} 🔔 Reply STOP anytime to stop."
ALERTS_OFF = "Done, no more drop alerts from us ✅ You can still message anytime 💬"
ALERTS_NONE = "You're not getting any alerts from us 👍 You can still message anytime 💬"
DROP_ALERT = (
    "New in {what} ✨\n{lines}\nWant one? Reply HOLD and its SKU. Reply STOP to stop these alerts."
)
NEW_DROPS_NONE = "Nothing new is available right now 🥲 New pieces drop often, so check back soon!"
