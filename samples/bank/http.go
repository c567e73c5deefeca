package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/quarkgo/quark/activation"
	"github.com/quarkgo/quark/runtime"
)

// maxBodyBytes caps request bodies; ours are a few dozen bytes.
const maxBodyBytes = 4 << 10

// Request and response bodies. Amounts and balances are in cents.
type (
	openRequest struct {
		Owner string `json:"owner"`
	}
	amountRequest struct {
		Amount int64 `json:"amount"`
	}
	transferRequest struct {
		From   string `json:"from"`
		To     string `json:"to"`
		Amount int64  `json:"amount"`
	}
	accountResponse struct {
		ID      string `json:"id"`
		Owner   string `json:"owner,omitempty"`
		Balance int64  `json:"balance"`
		Version int64  `json:"version,omitempty"`
	}
	errorResponse struct {
		Error string `json:"error"`
	}
)

// newHandler returns the JSON API over the accounts of h:
//
//	GET  /accounts/{id}           the account: {"id","owner","balance","version"}
//	POST /accounts/{id}           open it: {"owner"}
//	POST /accounts/{id}/deposit   {"amount"}
//	POST /accounts/{id}/withdraw  {"amount"}
//	POST /transfers               {"from","to","amount"}
func newHandler(h *runtime.Host) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /accounts/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		st, err := runtime.Ask[Statement](r.Context(), h.Ref(AccountKind, id), Balance{})
		reply(w, http.StatusOK, accountResponse{ID: id, Owner: st.Owner, Balance: st.Balance, Version: st.Version}, err)
	})
	mux.HandleFunc("POST /accounts/{id}", func(w http.ResponseWriter, r *http.Request) {
		var req openRequest
		if !decode(w, r, &req) {
			return
		}
		id := r.PathValue("id")
		//lint:ignore S1016 the request body and the actor message are separate types on purpose
		bal, err := runtime.Ask[int64](r.Context(), h.Ref(AccountKind, id), Open{Owner: req.Owner})
		reply(w, http.StatusCreated, accountResponse{ID: id, Owner: req.Owner, Balance: bal}, err)
	})
	// Deposits and withdrawals take the same body and reply the same way.
	change := func(message func(amount int64) any) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			var req amountRequest
			if !decode(w, r, &req) {
				return
			}
			id := r.PathValue("id")
			bal, err := runtime.Ask[int64](r.Context(), h.Ref(AccountKind, id), message(req.Amount))
			reply(w, http.StatusOK, accountResponse{ID: id, Balance: bal}, err)
		}
	}
	mux.HandleFunc("POST /accounts/{id}/deposit", change(func(n int64) any { return Deposit{Amount: n} }))
	mux.HandleFunc("POST /accounts/{id}/withdraw", change(func(n int64) any { return Withdraw{Amount: n} }))
	mux.HandleFunc("POST /transfers", func(w http.ResponseWriter, r *http.Request) {
		var req transferRequest
		if !decode(w, r, &req) {
			return
		}
		err := transfer(r.Context(), h, req.From, req.To, req.Amount)
		reply(w, http.StatusOK, req, err)
	})
	return mux
}

// decode reads one JSON object into v, refusing unknown fields, trailing
// data and bodies over maxBodyBytes. On failure it writes the error response
// and returns false.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.Decode(&struct{}{}) != io.EOF {
		err = errors.New("the body must hold a single JSON object")
	}
	if err == nil {
		return true
	}
	status := http.StatusBadRequest
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		status = http.StatusRequestEntityTooLarge
	}
	writeJSON(w, status, errorResponse{Error: fmt.Sprintf("invalid request body: %v", err)})
	return false
}

// reply writes v with status, or the error response for err.
func reply(w http.ResponseWriter, status int, v any, err error) {
	if err != nil {
		writeJSON(w, statusOf(err), errorResponse{Error: err.Error()})
		return
	}
	writeJSON(w, status, v)
}

// statusOf maps an error from the accounts to an HTTP status.
func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrInsufficientFunds):
		return http.StatusUnprocessableEntity
	case errors.Is(err, ErrInvalidAmount), errors.Is(err, ErrOwnerRequired),
		errors.Is(err, ErrSameAccount), errors.Is(err, activation.ErrInvalidID):
		return http.StatusBadRequest
	case errors.Is(err, ErrNotOpen):
		return http.StatusNotFound
	case errors.Is(err, ErrAlreadyOpen):
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client may be gone; nothing to do about it
}
