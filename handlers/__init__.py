"""One module per Slack surface: slash command, buttons, modals, App Home. Each has `register(app, deps)`."""
