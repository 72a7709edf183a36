"""The one record error of every source: a vendor record that cannot be stored as it is."""


class RecordError(ValueError):
    """This record cannot be stored as is; the message is the reason kept in ``sync_rejects``."""
