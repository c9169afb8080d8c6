"""The pipeline of a DM, from the queued webhook to the reply at TikTok.

Others may import:
- `inbound.InboundPipeline`: records an event and answers the conversation's turns in order
  (the worker's event task); `inbound.other_account_seen`: the account id of events that
  reached this app for another account (a misconfigured TIKTOK_BUSINESS_ID);
- `delivery.DeliveryService`, `delivery.Delivery`: sends one outbox row, at most once
  (the worker's send task and sweeper);
- `media.CachedMediaResolver`, `media.MediaUnavailable`: item photos to TikTok media ids;
- `outbound.queue_replies`: a reply into the outbox, committed with what caused it (a
  turn's answer, the staff inbox);
- `window.WindowService`, `window.WindowState`: the 48 h window and the reply quota;
  `window.MirroredWindow`: the same read from PostgreSQL's mirror, where there is no Redis;
- `proactive.ProactivePolicy`: what the shop says unasked (reminders, confirmations,
  notices, alerts): window, quota, quiet hours, one a day; `proactive.Outcome`, `Said`;
- `echoes.EchoLedger`: the webhook settles the echo of a reply the bot recorded, and keeps
  any other echo on record as queued for its conversation until a worker handles it;
- `transitions`: every change of a conversation's mode and of a reply's delivery state;
- `alerts.tiktok_alerts`: what is wrong with the TikTok connection (disconnected, events
  for another account), for /readyz and the staff inbox.
"""
