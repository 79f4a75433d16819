package admin

import (
	"embed"
	"net/http"
)

// PagePrefix is where the web page is served. The page holds no data: its
// script asks for the token and calls the API with it.
const PagePrefix = "/admin/"

//go:embed page
var page embed.FS

// pageHeaders forbid anything but the page's own files and framing.
func pageHeaders(w http.ResponseWriter) {
	w.Header().Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Cache-Control", "no-cache")
}

// servePage serves one embedded file of the page.
func servePage(name, contentType string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := page.ReadFile("page/" + name)
		if err != nil { // cannot happen: the files are embedded
			http.NotFound(w, r)
			return
		}
		pageHeaders(w)
		w.Header().Set("Content-Type", contentType)
		_, _ = w.Write(b) // the client went away: nothing left to tell it
	}
}
