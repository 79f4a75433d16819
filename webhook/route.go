package webhook

import (
	"fmt"
	"net/http"
	"strings"
)

// notFoundName is the problem name of a path that no route serves.
const notFoundName = "not-found"

// NotFound returns the handler of the requests no route takes: a 404
// not-found problem, in the RFC 7807 form of every other error, whose
// detail names the path. Mount it at "/" of a ServeMux.
func NotFound() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteProblem(w, Problem{
			Type:   ProblemTypePrefix + notFoundName,
			Title:  "Not found",
			Status: http.StatusNotFound,
			Detail: fmt.Sprintf("no route serves %q: paths match exactly, case and trailing slash included", r.URL.Path),
		})
	})
}

// MethodNotAllowed returns the handler of a route asked with a method it
// does not take: a 405 method-not-allowed problem with Allow listing allow.
func MethodNotAllowed(allow ...string) http.Handler {
	spec := kindMethodNotAllowed.spec()
	methods := strings.Join(allow, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", methods)
		WriteProblem(w, Problem{
			Type:   ProblemTypePrefix + spec.name,
			Title:  spec.title,
			Status: spec.status,
			Detail: fmt.Sprintf("%s is not accepted here: use %s", r.Method, methods),
		})
	})
}
