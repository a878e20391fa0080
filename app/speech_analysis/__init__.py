"""Speech analysis of clips: the stored results of app.speech (the `analyze_speech` job) and
the routes that serve them (speech metrics, transcript, WebVTT)."""
