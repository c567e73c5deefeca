package stub

import (
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/datastax/go-cassandra-native-protocol/datatype"
	"github.com/datastax/go-cassandra-native-protocol/message"
	"github.com/datastax/go-cassandra-native-protocol/primitive"
)

// Config configures a Server. Zero fields give the defaults.
type Config struct {
	// Listen is the CQL address; default 127.0.0.1:9042.
	Listen string
	// Admin is the address of the HTTP admin API (faults, clock, status);
	// "" disables it.
	Admin string
	// ClusterName and DataCenter are what system.local reports; defaults
	// "cqlstub" and "datacenter1".
	ClusterName, DataCenter string
	// Clock is the server's clock (for TTLs); default time.Now. The admin
	// API can move it forward.
	Clock func() time.Time
	// SweepInterval is how often rows that no longer exist are dropped
	// from memory; default 10 s, negative: never.
	SweepInterval time.Duration
	// Logger receives the server's log; default slog.Default().
	Logger *slog.Logger
}

// Server is the CQL stand-in: a native-protocol server that answers a
// driver's handshake and system-table queries, and executes exactly the
// statements of package cql of the Cassandra provider on in-memory tables.
type Server struct {
	cfg      Config
	tpls     []*template
	engine   *engine
	faults   faults
	offset   atomic.Int64 // nanoseconds added to cfg.Clock
	prepared sync.Map     // string(id) -> *stmt or systemStmt

	ln      net.Listener
	admin   *http.Server
	adminLn net.Listener
	stop    chan struct{}
	done    sync.WaitGroup
	closed  atomic.Bool
	connMu  sync.Mutex
	conns   map[net.Conn]struct{}

	counts struct {
		query, prepare, execute, batch, errors atomic.Int64
	}
}

// New returns a server; Start starts it.
func New(cfg Config) (*Server, error) {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:9042"
	}
	if cfg.ClusterName == "" {
		cfg.ClusterName = "cqlstub"
	}
	if cfg.DataCenter == "" {
		cfg.DataCenter = "datacenter1"
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	tpls, err := templates()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, tpls: tpls, stop: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	s.engine = newEngine(s.now)
	return s, nil
}

// now is the server's clock: cfg.Clock plus the admin API's offset.
func (s *Server) now() time.Time { return s.cfg.Clock().Add(time.Duration(s.offset.Load())) }

// Advance moves the server's clock forward by d (TTLs expire sooner).
func (s *Server) Advance(d time.Duration) {
	if d > 0 {
		s.offset.Add(int64(d))
	}
}

// Start listens on the CQL address (and the admin address) and serves
// until Close or until ctx ends.
func (s *Server) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return err
	}
	s.ln = ln
	if s.cfg.Admin != "" {
		if s.adminLn, err = net.Listen("tcp", s.cfg.Admin); err != nil {
			_ = ln.Close()
			return fmt.Errorf("admin API: %w", err)
		}
		s.admin = &http.Server{Handler: s.adminHandler(), ReadHeaderTimeout: 5 * time.Second}
		s.done.Add(1)
		go func() {
			defer s.done.Done()
			if err := s.admin.Serve(s.adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.cfg.Logger.Error("admin API stopped", "err", err)
			}
		}()
	}
	s.done.Add(2)
	go s.accept()
	go func() {
		defer s.done.Done()
		var tick <-chan time.Time
		if s.cfg.SweepInterval > 0 {
			t := time.NewTicker(s.cfg.SweepInterval)
			defer t.Stop()
			tick = t.C
		}
		for {
			select {
			case <-tick:
				s.engine.sweep()
			case <-s.stop:
				return
			case <-ctx.Done():
				go s.Close() // Close waits for this goroutine
				return
			}
		}
	}()
	s.cfg.Logger.Info("cqlstub listening", "cql", s.Addr(), "admin", s.AdminAddr(), "cluster", s.cfg.ClusterName)
	return nil
}

func (s *Server) accept() {
	defer s.done.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if !s.closed.Load() {
				s.cfg.Logger.Error("accepting connections", "err", err)
			}
			return
		}
		s.connMu.Lock()
		if s.closed.Load() {
			s.connMu.Unlock()
			_ = c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.done.Add(1)
		s.connMu.Unlock()
		go s.serve(c)
	}
}

func (s *Server) untrack(c net.Conn) {
	_ = c.Close()
	s.connMu.Lock()
	delete(s.conns, c)
	s.connMu.Unlock()
}

// Addr is the CQL address, once started.
func (s *Server) Addr() string {
	if s.ln == nil {
		return s.cfg.Listen
	}
	return s.ln.Addr().String()
}

// AdminAddr is the admin API's address, once started; "" if disabled.
func (s *Server) AdminAddr() string {
	if s.adminLn == nil {
		return ""
	}
	return s.adminLn.Addr().String()
}

// Close stops the server: the listeners and every connection. It returns
// once every goroutine of the server has ended.
func (s *Server) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	close(s.stop)
	var errs []error
	if s.ln != nil {
		errs = append(errs, s.ln.Close())
	}
	s.connMu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.connMu.Unlock()
	if s.admin != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, s.admin.Shutdown(ctx))
		cancel()
	}
	s.done.Wait()
	s.cfg.Logger.Info("cqlstub closed")
	return errors.Join(errs...)
}

// AddFault injects a fault (see FaultKind) and returns it with its id.
func (s *Server) AddFault(f Fault) (Fault, error) { return s.faults.add(f) }

// notRecognised is the answer to a statement that is not one of the
// provider's.
func notRecognised(text string) error {
	if len(text) > 200 {
		text = text[:200] + "..."
	}
	return syntaxf("line 1:0 no viable alternative at input %q (cqlstub executes only the statements of "+
		"github.com/quarkgo/quark/providers/cassandra/cql)", text)
}

func (s *Server) query(m *message.Query) (message.Message, error) {
	st, ok, err := match(s.tpls, m.Query)
	switch {
	case err != nil:
		return nil, err
	case !ok:
		s.cfg.Logger.Warn("statement not recognised", "cql", m.Query)
		return nil, notRecognised(m.Query)
	}
	switch st.kind {
	case stmtCreateKeyspace:
		s.cfg.Logger.Info("create keyspace", "keyspace", st.keyspace, "replication", st.replication)
		return s.engine.createKeyspace(st)
	case stmtCreateTable:
		s.cfg.Logger.Info("create table", "keyspace", st.keyspace, "table", st.table)
		return s.engine.createTable(st)
	case stmtDropTable:
		s.cfg.Logger.Info("drop table", "keyspace", st.keyspace, "table", st.table)
		res, err := s.engine.dropTable(st)
		if err == nil {
			// As Cassandra, forget the statements prepared on the table.
			s.prepared.Range(func(id, v any) bool {
				if p, ok := v.(*stmt); ok && p.keyspace == st.keyspace && p.table == st.table {
					s.prepared.Delete(id)
				}
				return true
			})
		}
		return res, err
	}
	opts := m.Options
	if opts == nil {
		opts = &message.QueryOptions{}
	}
	return s.run(st, opts)
}

// prepareID is the prepared statement id of a text: its MD5, as Cassandra.
func prepareID(text string) []byte {
	sum := md5.Sum([]byte(normalize(text)))
	return sum[:]
}

// systemStmt is a prepared query of the system tables.
type systemStmt string

func (s *Server) prepare(m *message.Prepare) (message.Message, error) {
	if res, ok := s.systemQuery(m.Query, nil); ok {
		rr, ok := res.(*message.RowsResult)
		if !ok {
			return res, nil // an error
		}
		id := prepareID(m.Query)
		s.prepared.Store(string(id), systemStmt(m.Query))
		return &message.PreparedResult{PreparedQueryId: id, ResultMetadataId: id,
			VariablesMetadata: &message.VariablesMetadata{Columns: []*message.ColumnMetadata{}}, ResultMetadata: rr.Metadata}, nil
	}
	st, ok, err := match(s.tpls, m.Query)
	switch {
	case err != nil:
		return nil, err
	case !ok:
		s.cfg.Logger.Warn("statement not recognised", "cql", m.Query)
		return nil, notRecognised(m.Query)
	case st.kind != stmtSelect && !st.kind.isDML():
		return nil, invalidf("cqlstub: only data statements can be prepared, not %s", st.kind)
	}
	sc, err := s.engine.checkTable(st.keyspace, st.table)
	if err != nil {
		return nil, err
	}
	if err := checkStmt(st, sc); err != nil {
		return nil, err
	}
	id := prepareID(m.Query)
	s.prepared.Store(string(id), st)
	t := &table{keyspace: st.keyspace, name: st.table, schema: sc}
	vars := &message.VariablesMetadata{Columns: []*message.ColumnMetadata{}}
	first := map[string]int{}
	for i, b := range st.binds {
		if b.role == bindTTL {
			vars.Columns = append(vars.Columns, colSpec(t, "[ttl]", datatype.Int))
			continue
		}
		vars.Columns = append(vars.Columns, colSpec(t, b.column, sc.types[b.column].dataType()))
		if _, seen := first[b.column]; !seen && b.role != bindCond {
			first[b.column] = i
		}
	}
	for _, c := range sc.pk {
		i, ok := first[c]
		if !ok {
			vars.PkIndices = nil
			break
		}
		vars.PkIndices = append(vars.PkIndices, uint16(i))
	}
	res := &message.RowsMetadata{ColumnCount: 0}
	if st.kind == stmtSelect {
		for _, c := range st.columns {
			res.Columns = append(res.Columns, colSpec(t, c, sc.types[c].dataType()))
		}
		res.ColumnCount = int32(len(res.Columns))
	}
	return &message.PreparedResult{PreparedQueryId: id, ResultMetadataId: id, VariablesMetadata: vars, ResultMetadata: res}, nil
}

func (s *Server) execute(m *message.Execute, c net.Conn) (message.Message, error) {
	v, ok := s.prepared.Load(string(m.QueryId))
	if !ok {
		return nil, &requestError{&message.Unprepared{ErrorMessage: fmt.Sprintf("Prepared query with ID %x not found", m.QueryId),
			Id: m.QueryId}}
	}
	opts := m.Options
	if opts == nil {
		opts = &message.QueryOptions{}
	}
	if sys, ok := v.(systemStmt); ok {
		res, _ := s.systemQuery(string(sys), c)
		if rr, ok := res.(*message.RowsResult); ok && opts.SkipMetadata {
			rr.Metadata.Columns = nil
		}
		return res, nil
	}
	return s.run(v.(*stmt), opts)
}

// checkConsistency refuses the consistency levels Cassandra refuses for
// the statement.
func checkConsistency(st *stmt, conditional bool, cl primitive.ConsistencyLevel, serial *primitive.ConsistencyLevel) error {
	isSerial := func(c primitive.ConsistencyLevel) bool {
		return c == primitive.ConsistencyLevelSerial || c == primitive.ConsistencyLevelLocalSerial
	}
	if st.kind == stmtSelect {
		if cl == primitive.ConsistencyLevelAny {
			return invalidf("ANY ConsistencyLevel is only supported for writes")
		}
		return nil
	}
	switch {
	case isSerial(cl) && conditional:
		return invalidf("SERIAL is not supported as conditional update commit consistency. Use ANY if you mean " +
			"\"make sure it is accepted but I don't care how many replicas commit it for non-SERIAL reads\"")
	case isSerial(cl):
		return invalidf("You must use conditional updates for serializable writes")
	case conditional && serial != nil && !isSerial(*serial):
		return invalidf("Invalid consistency for conditional update. Must be one of SERIAL or LOCAL_SERIAL")
	}
	return nil
}

func serialOf(serial *primitive.ConsistencyLevel) primitive.ConsistencyLevel {
	if serial == nil {
		return primitive.ConsistencyLevelSerial
	}
	return *serial
}

// run executes a data statement, with the faults that apply to it.
func (s *Server) run(st *stmt, opts *message.QueryOptions) (message.Message, error) {
	if opts.NamedValues != nil {
		return nil, invalidf("cqlstub: named values are not supported")
	}
	if err := checkConsistency(st, st.conditional(), opts.Consistency, opts.SerialConsistency); err != nil {
		return nil, err
	}
	var fired *Fault
	hook := func(b *bound) bool {
		if st.kind == stmtSelect || st.conditional() {
			fired = s.faults.take(b.t.keyspace, b.t.name, b.keys, st.kind == stmtSelect)
		}
		return fired == nil || fired.Kind.applies()
	}
	msg, err := s.engine.execute(st, st.keyspace, st.table, opts.PositionalValues, hook)
	if err != nil {
		return nil, err
	}
	if fired != nil {
		return s.faultReply(fired, opts.Consistency, serialOf(opts.SerialConsistency))
	}
	if rr, ok := msg.(*message.RowsResult); ok && st.kind == stmtSelect && opts.SkipMetadata {
		rr.Metadata.Columns = nil // the client has the columns from PREPARE
	}
	return msg, nil
}

// faultReply is the answer of a fired fault: a timeout error, or none.
func (s *Server) faultReply(f *Fault, cl, serial primitive.ConsistencyLevel) (message.Message, error) {
	s.cfg.Logger.Info("fault injected", "fault", f.Kind, "keyspace", f.Keyspace, "table", f.Table, "key", f.Key)
	switch f.Kind {
	case CASTimeoutApplied, CASTimeoutNotApplied:
		return &message.WriteTimeout{ErrorMessage: "Operation timed out - received only 0 responses.",
			Consistency: serial, Received: 0, BlockFor: 1, WriteType: primitive.WriteTypeCas}, nil
	case ReadTimeout:
		return &message.ReadTimeout{ErrorMessage: "Operation timed out - received only 0 responses.",
			Consistency: cl, Received: 0, BlockFor: 1}, nil
	}
	return nil, nil // no answer
}

func (s *Server) batch(m *message.Batch) (message.Message, error) {
	if m.Type == primitive.BatchTypeCounter {
		return nil, invalidf("cqlstub: counter batches are not supported")
	}
	items := make([]batchItem, len(m.Children))
	conditional := false
	for i, c := range m.Children {
		var st *stmt
		if c.Id != nil {
			v, ok := s.prepared.Load(string(c.Id))
			if !ok {
				return nil, &requestError{&message.Unprepared{ErrorMessage: fmt.Sprintf("Prepared query with ID %x not found", c.Id), Id: c.Id}}
			}
			if st, ok = v.(*stmt); !ok {
				return nil, invalidf("Invalid statement in batch: only UPDATE, INSERT and DELETE statements are allowed.")
			}
		} else {
			var ok bool
			var err error
			if st, ok, err = match(s.tpls, c.Query); err != nil {
				return nil, err
			} else if !ok {
				return nil, notRecognised(c.Query)
			}
		}
		if !st.kind.isDML() {
			return nil, invalidf("Invalid statement in batch: only UPDATE, INSERT and DELETE statements are allowed.")
		}
		conditional = conditional || st.conditional()
		items[i] = batchItem{s: st, ks: st.keyspace, table: st.table, values: c.Values}
	}
	for _, it := range items {
		if err := checkConsistency(it.s, conditional, m.Consistency, m.SerialConsistency); err != nil {
			return nil, err
		}
	}
	var fired *Fault
	hook := func(bs []*bound) bool {
		for _, b := range bs {
			if b.s.conditional() {
				if fired = s.faults.take(b.t.keyspace, b.t.name, b.keys, false); fired != nil {
					break
				}
			}
		}
		return fired == nil || fired.Kind.applies()
	}
	msg, err := s.engine.batch(items, hook)
	if err != nil {
		return nil, err
	}
	if fired != nil {
		return s.faultReply(fired, m.Consistency, serialOf(m.SerialConsistency))
	}
	return msg, nil
}
