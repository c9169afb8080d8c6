"""Training data of the local router (`train.jsonl`) and the script that builds it."""
