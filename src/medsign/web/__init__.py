"""Server-rendered pages (Jinja2 + small vanilla JavaScript, no CDN, no build step)."""
