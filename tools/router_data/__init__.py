"""The generator of the local router's training data (`app/services/router/data/train.jsonl`)
and the hand-written held-out set; not part of the running bot. See README.md here."""
