"""The web panel: what the bot does and holds, for the people who run it, on the HTTP server
beside health and metrics (bot/web.py). `routes.add_panel` mounts it."""
