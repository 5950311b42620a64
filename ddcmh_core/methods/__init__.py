"""Cross-modal hashing methods: the interface, DDCMH, the DCMH baseline and their parts."""
