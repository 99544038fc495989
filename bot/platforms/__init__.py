"""Platform adapters: the only modules that talk to Discord, Slack or the terminal."""
