"""Stage 3, serving: the browser page (web/, web_site), the HTTP server and the Raspberry Pi bundle.
Imports export (the page's model variant) and below, never above."""
