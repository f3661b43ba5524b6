"""Person re-identification: the Market-1501 evaluation protocol and the weight-free
stripe descriptor (colour and texture of horizontal body stripes)."""
