package stub

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// The admin API, plain HTTP with JSON bodies, for tests and scripts:
//
//	GET    /status   what the server is: {"server": "cqlstub", ...} and its counters
//	POST   /faults   inject a fault: {"keyspace", "table", "key": {"col": "value"}, "fault", "times"}
//	GET    /faults   the pending faults
//	DELETE /faults   remove every pending fault
//	GET    /clock    the server's clock and its offset
//	POST   /clock    move the clock forward: {"advance": "90s"}; or back to the real time: {"reset": true}
//
// It binds where Config.Admin says (127.0.0.1:9043 for the command) and
// has no authentication: it is a test tool, on loopback.

// Status is the answer of GET /status.
type Status struct {
	Server      string           `json:"server"` // always "cqlstub"
	ClusterName string           `json:"cluster_name"`
	DataCenter  string           `json:"data_center"`
	CQL         string           `json:"cql"`
	Now         time.Time        `json:"now"`
	ClockOffset string           `json:"clock_offset"`
	Keyspaces   int              `json:"keyspaces"`
	Tables      int              `json:"tables"`
	Rows        int              `json:"rows"`
	Requests    map[string]int64 `json:"requests"`
	Faults      int              `json:"faults_pending"`
	Fired       int              `json:"faults_fired"`
}

// Status reports what the server holds and has done.
func (s *Server) Status() Status {
	ks, tables, rows := s.engine.stats()
	s.faults.mu.Lock()
	pending, fired := len(s.faults.list), s.faults.fired
	s.faults.mu.Unlock()
	return Status{
		Server: "cqlstub", ClusterName: s.cfg.ClusterName, DataCenter: s.cfg.DataCenter, CQL: s.cfg.Listen,
		Now: s.now(), ClockOffset: time.Duration(s.offset.Load()).String(),
		Keyspaces: ks, Tables: tables, Rows: rows,
		Requests: map[string]int64{
			"query": s.counts.query.Load(), "prepare": s.counts.prepare.Load(), "execute": s.counts.execute.Load(),
			"batch": s.counts.batch.Load(), "errors": s.counts.errors.Load(),
		},
		Faults: pending, Fired: fired,
	}
}

func (s *Server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.Status()) })
	mux.HandleFunc("GET /faults", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.faults.pending())
	})
	mux.HandleFunc("POST /faults", func(w http.ResponseWriter, r *http.Request) {
		var f Fault
		if err := readJSON(r, &f); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		f, err := s.faults.add(f)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		s.cfg.Logger.Info("fault added", "id", f.ID, "fault", f.Kind, "keyspace", f.Keyspace, "table", f.Table, "key", f.Key, "times", f.Times)
		writeJSON(w, http.StatusCreated, f)
	})
	mux.HandleFunc("DELETE /faults", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]int{"removed": s.faults.clear()})
	})
	clock := func(w http.ResponseWriter) {
		writeJSON(w, http.StatusOK, map[string]string{"now": s.now().Format(time.RFC3339Nano),
			"offset": time.Duration(s.offset.Load()).String()})
	}
	mux.HandleFunc("GET /clock", func(w http.ResponseWriter, _ *http.Request) { clock(w) })
	mux.HandleFunc("POST /clock", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Advance string `json:"advance"`
			Reset   bool   `json:"reset"`
		}
		if err := readJSON(r, &req); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		if req.Reset && req.Advance == "" {
			s.offset.Store(0)
			s.cfg.Logger.Info("clock reset")
			clock(w)
			return
		}
		d, err := time.ParseDuration(req.Advance)
		if err != nil || d < 0 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("advance: %q is not a positive duration", req.Advance)})
			return
		}
		s.Advance(d)
		s.cfg.Logger.Info("clock advanced", "by", d)
		clock(w)
	})
	return mux
}

func readJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad JSON body: %w", err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
