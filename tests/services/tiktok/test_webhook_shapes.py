"""The webhook's content as production integrations show it beyond TikTok's docs
(../shared/spec/tiktok-api.md): strict on what the bot needs, lenient on the rest."""

from __future__ import annotations

from typing import Any

import pytest

from app.services.tiktok.webhook import (
    ContentType,
    EchoAuthor,
    EventType,
    InvalidEnvelope,
    MessageContent,
    parse_content,
    parse_envelope,
    video_id_in,
)
from tests.factories import (
    CUSTOMER_ID,
    content_of,
    echo,
    emoji_message,
    encode,
    event_of,
    image_by_url,
    image_message,
    media_message,
    reaction_message,
    share_post,
    sticker_message,
    template_message,
    text_message,
    video_message,
    with_content,
)
from tests.factories import (
    Envelope as Body,
)


def parsed(body: Body) -> MessageContent:
    return parse_content(parse_envelope(encode(body)))


def changed(body: Body, **fields: Any) -> Body:
    return with_content(body, {**content_of(body), **fields})


# --- ids are strings -------------------------------------------------------------------------


def test_a_numeric_video_id_is_read_as_a_string() -> None:
    # Once a validation error: the whole message went to the dead letters.
    content = parsed(share_post(7300000000000000001))
    assert content.share_post is not None
    assert content.share_post.video_id == "7300000000000000001"


def test_numeric_ids_everywhere_are_read_as_strings() -> None:
    body = changed(
        text_message("hi"),
        message_id=123,
        conversation_id=456,
        from_user={"id": 789, "role": "personal_account"},
        to_user={"id": 1011},
        unique_identifier=1213,
        referenced_message_info={"referenced_message_id": 1415},
    )
    content = parsed(body)
    assert (content.message_id, content.conversation_id, content.from_user.id) == (
        "123",
        "456",
        "789",
    )
    assert content.to_user is not None and content.to_user.id == "1011"
    assert content.unique_identifier == "1213"
    assert content.referenced_message_info is not None
    assert content.referenced_message_info.referenced_message_id == "1415"


def test_a_numeric_user_openid_is_read_as_a_string() -> None:
    body = {**text_message(), "user_openid": 7528370655977505848}
    assert parse_envelope(encode(body)).user_openid == "7528370655977505848"


# --- share_post: the id from the link ------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://www.tiktok.com/embed/7302",
        "https://www.tiktok.com/embed/v2/7302",
        "https://www.tiktok.com/embed/v2/7302?lang=en-US&referrer=x",
        "https://www.tiktok.com/@philiathrifts/video/7302",
        "https://www.tiktok.com/@philiathrifts/video/7302?is_from_webapp=1&sender_device=pc",
        "https://www.tiktok.com/embed/7302/",
    ],
)
def test_a_shared_post_without_video_id_takes_it_from_embed_url(url: str) -> None:
    content = parsed(share_post(None, embed_url=url))
    assert content.share_post is not None and content.share_post.video_id == "7302"
    stored = content.model_dump(mode="json", by_alias=True)["share_post"]
    assert stored == {"video_id": "7302", "embed_url": url}


@pytest.mark.parametrize(
    "url",
    ["https://www.tiktok.com/@philiathrifts", "not a link", "https://[::1/embed/7", ""],
)
def test_a_link_to_no_video_gives_no_id(url: str) -> None:
    assert video_id_in(url) is None
    content = parsed(share_post(None, embed_url=url))
    assert content.share_post is not None and content.share_post.video_id is None


def test_video_id_wins_over_embed_url() -> None:
    content = parsed(share_post("7301", embed_url="https://www.tiktok.com/embed/7302"))
    assert content.share_post is not None and content.share_post.video_id == "7301"


def test_an_unreadable_video_id_falls_back_to_embed_url() -> None:
    body = changed(
        share_post(None),
        share_post={"video_id": {"odd": True}, "embed_url": "https://www.tiktok.com/embed/7303"},
    )
    content = parsed(body)
    assert content.share_post is not None and content.share_post.video_id == "7303"


# --- the other types ---------------------------------------------------------------------------


def test_images_by_media_id_or_by_link() -> None:
    assert parsed(image_message("media-7")).image_reference == "media-7"
    by_link = parsed(image_by_url("https://p16.tiktokcdn.com/a.jpg"))
    assert by_link.image_reference == "https://p16.tiktokcdn.com/a.jpg"
    top_level = parsed(image_by_url("https://p16.tiktokcdn.com/b.jpg", top_level=True))
    assert top_level.image_reference == "https://p16.tiktokcdn.com/b.jpg"
    bare = parsed(media_message("image"))
    assert (bare.type, bare.image_reference) == (ContentType.IMAGE, None)


def test_video_sticker_and_emoji_read_as_their_type() -> None:
    video = parsed(video_message("vid-9"))
    assert video.video is not None and video.video.media_id == "vid-9"
    sticker = parsed(sticker_message("https://x/s.png"))
    assert sticker.sticker is not None and sticker.sticker.url == "https://x/s.png"
    emoji = parsed(emoji_message("https://x/e.png"))
    assert emoji.emoji is not None and emoji.emoji.url == "https://x/e.png"
    assert [video.said, sticker.said, emoji.said] == [None, None, None]


def test_a_reaction_reads_as_one() -> None:
    content = parsed(reaction_message("\N{THUMBS UP SIGN}", original_msg_id="tt-4"))
    assert content.type == ContentType.REACTION
    assert content.reaction is not None
    (reaction,) = content.reaction
    assert reaction is not None
    assert (reaction.operation, reaction.emoji, reaction.original_msg_id) == (
        "ADD",
        "\N{THUMBS UP SIGN}",
        "tt-4",
    )
    assert content.said is None


def test_a_tapped_suggested_question_says_its_button_text() -> None:
    assert parsed(template_message("Do you ship to Canada?")).said == "Do you ship to Canada?"


def test_a_card_with_several_buttons_says_the_first_reply_button() -> None:
    body = template_message("Do you ship?", "Are returns free?")
    assert parsed(body).said == "Do you ship?"
    card = content_of(body)["template"]
    card["elements"][0]["buttons"].insert(0, {"text": "Visit shop", "type": "LINK"})
    assert parsed(changed(body, template=card)).said == "Do you ship?"


def test_a_card_without_a_readable_button_says_nothing() -> None:
    body = template_message()  # no buttons: only the shop's title
    assert parsed(body).said is None
    odd = changed(body, template={"type": "qa_button_card", "elements": "?"})
    assert parsed(odd).said is None
    assert parsed(changed(body, template=None)).said is None


def test_an_unknown_type_is_no_error() -> None:
    content = parsed(media_message("voice_note", {"duration": 3}))
    assert content.type == "voice_note" and content.said is None


# --- optional fields lose themselves, never the message -------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("from", {"name": "ana"}),
        ("to", 42),
        ("to_user", "shop"),
        ("referenced_message_info", "msg-1"),
        ("unique_identifier", {"x": 1}),
        ("message_tag", ["API"]),
        ("auto_message_type", 3),
        ("image", "img"),
        ("share_post", 7),
        ("template", []),
        ("reaction", {"emoji": "x"}),
    ],
)
def test_an_oddly_typed_optional_field_is_read_as_absent(field: str, value: object) -> None:
    content = parsed(changed(text_message("is PT-0001 available?"), **{field: value}))
    assert content.text is not None and content.text.body == "is PT-0001 available?"
    attribute = {"from": "sender", "to": "recipient"}.get(field, field)
    assert getattr(content, attribute) is None


def test_optional_fields_may_be_missing_and_extra_ones_are_kept() -> None:
    content = content_of(text_message("hi"))
    for field in ("from", "to", "to_user"):
        del content[field]
    del content["from_user"]["role"]
    content.update(scene_type=1, is_follower=True)
    read = parsed(with_content(text_message(), content))
    assert (read.sender, read.recipient, read.to_user, read.from_user.role) == (
        None,
        None,
        None,
        None,
    )
    assert read.model_dump(by_alias=True)["scene_type"] == 1
    assert read.model_dump(by_alias=True)["is_follower"] is True


def test_the_text_of_a_non_text_message_may_be_anything() -> None:
    content = parsed(changed(image_message(), text="a caption?"))
    assert content.type == ContentType.IMAGE and content.text is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("conversation_id", None),
        ("conversation_id", {"id": "c"}),
        ("from_user", {"role": "personal_account"}),
        ("from_user", "cust-1"),
        ("message_id", ["m"]),
        ("timestamp", "yesterday"),
        ("type", None),
        ("text", {"body": 5}),
        ("text", "hi"),
    ],
)
def test_what_the_bot_needs_is_checked(field: str, value: object) -> None:
    with pytest.raises(InvalidEnvelope):
        parsed(changed(text_message("hi"), **{field: value}))


@pytest.mark.parametrize("missing", ["conversation_id", "from_user", "timestamp", "type", "text"])
def test_a_text_message_missing_what_the_bot_needs_is_invalid(missing: str) -> None:
    content = content_of(text_message("hi"))
    del content[missing]
    with pytest.raises(InvalidEnvelope):
        parsed(with_content(text_message(), content))


# --- who sent an echo -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "auto_message_type", "author", "could_be_ours"),
    [
        (None, None, EchoAuthor.STAFF_APP, True),  # older payloads
        ("APP", None, EchoAuthor.STAFF_APP, False),
        ("WEB", None, EchoAuthor.STAFF_APP, False),
        ("app", None, EchoAuthor.STAFF_APP, False),
        ("API", None, EchoAuthor.OTHER_API_TOOL, True),
        ("OTHERS", None, EchoAuthor.OTHER_SOURCE, False),
        (None, "WELCOME_MESSAGE", EchoAuthor.TIKTOK_AUTOMATION, False),
        ("APP", "SUGGESTED_QUESTION", EchoAuthor.TIKTOK_AUTOMATION, False),
        ("API", "AUTO_REPLY", EchoAuthor.TIKTOK_AUTOMATION, False),
    ],
)
def test_an_echo_tells_who_sent_it(
    source: str | None, auto_message_type: str | None, author: EchoAuthor, could_be_ours: bool
) -> None:
    content = parsed(echo("hello", source=source, auto_message_type=auto_message_type))
    assert content.echo_author() is author
    assert content.could_be_ours is could_be_ours
    assert content.to_user is not None and content.to_user.id == CUSTOMER_ID


# --- other events ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "content"),
    [
        (EventType.PING, {"reason": "testing Webhook"}),
        (EventType.AUTHORIZATION_REMOVED, {}),
        (EventType.RECEIVE_EU, {"to": "shop", "to_user": {"id": "x"}, "timestamp": 1}),
        (EventType.AUTO_MESSAGE_CONFIG_UPDATE, {"auto_message_type": "WELCOME_MESSAGE"}),
        (EventType.AUTO_MESSAGE_AUDIT_UPDATE, {"audit_status": "APPROVED"}),
        (EventType.HIGH_INTENT_COMMENT, {"comment_id": 1}),
    ],
)
def test_other_events_are_tiktok_envelopes(event: str, content: dict[str, Any]) -> None:
    assert parse_envelope(encode(event_of(event, content))).event == event
