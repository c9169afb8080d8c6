"""TikTok Business Messaging, as ../shared/spec/tiktok-api.md describes it.

Others may import:
- `signature`: the webhook signature (verify, and sign for the stand-in and the bench);
- `webhook`: the envelope and message content of a webhook event, parsed and bounded;
- `client.TikTokClient`: sends text and images, uploads media, checks capabilities,
  refreshes tokens, under the shared send rate;
- `errors`: what a TikTok answer means (transient, permanent, auth) and the backoff;
- `tokens`: where the OAuth pair lives (encrypted in PostgreSQL, cached in Redis);
- `text`: TikTok's text rules (length, splitting);
- `api`: the request and response models of the Business API;
- `connection`: whether the shop's account is connected (`mark_disconnected`,
  `mark_connected`, `disconnected_since`, and the notice staff get).
"""
