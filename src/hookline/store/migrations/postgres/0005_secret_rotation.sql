-- secret rotation: the previous secret keeps signing (beside the new one) until the overlap ends

ALTER TABLE webhooks ADD COLUMN previous_secret text;
ALTER TABLE webhooks ADD COLUMN previous_secret_until timestamptz;
