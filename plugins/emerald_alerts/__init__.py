"""The data gate between validation and Pusher, and the night's alerts."""
