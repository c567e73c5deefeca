package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"strings"
	"sync"
)

// Server is the TDS stand-in: it accepts go-mssqldb connections (TDS 7.4,
// without encryption) and runs the provider's statements on in-memory
// tables.
type Server struct {
	eng *engine
	log *log.Logger

	// User and Password, if Password is set, are the only login accepted;
	// otherwise any login is.
	User, Password string

	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// NewServer returns a server with empty storage. logger receives one line
// per connection problem or statement the stand-in does not know; nil
// discards them.
func NewServer(logger *log.Logger) *Server {
	if logger == nil {
		logger = log.New(io.Discard, "", 0)
	}
	return &Server{eng: newEngine(), log: logger, conns: map[net.Conn]struct{}{}}
}

// Serve accepts connections on ln until Close.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.ln = ln
	s.mu.Unlock()
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			return err
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return nil
		}
		s.conns[nc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serve(nc)
			s.mu.Lock()
			delete(s.conns, nc)
			s.mu.Unlock()
		}()
	}
}

// Close stops accepting, closes every connection (rolling back their
// transactions) and waits for their goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	if s.ln != nil {
		s.ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// conn is one client connection.
type conn struct {
	s          *Server
	nc         net.Conn
	packetSize int
	sess       session

	mu     sync.Mutex
	cancel context.CancelFunc // interrupts the request being run
}

// errDrop makes the connection close without an answer (fault injection).
var errDrop = errors.New("tdsstub: connection dropped by an injected fault")

func (s *Server) serve(nc net.Conn) {
	c := &conn{s: s, nc: nc, packetSize: 4096}
	defer nc.Close()
	br := bufio.NewReaderSize(nc, 64<<10)
	if err := c.handshake(br); err != nil {
		if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
			s.log.Printf("%s: handshake: %v", nc.RemoteAddr(), err)
		}
		return
	}

	ctx, cancel := context.WithCancel(context.Background())
	msgs := make(chan message)
	go func() {
		defer close(msgs)
		for {
			m, err := readMessage(br)
			if err != nil {
				cancel() // the client is gone: interrupt whatever runs
				return
			}
			if m.typ == pktAttention {
				c.interrupt()
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	defer func() {
		cancel()
		nc.Close()
		for range msgs {
		}
		// A transaction left open by a client that went away is rolled
		// back, as SQL Server does.
		s.eng.end(&c.sess, false)
	}()
	for m := range msgs {
		if m.typ == pktAttention {
			var t tokens
			t.done(tokDone, doneAttn, 0, 0)
			if err := writeMessage(nc, pktReply, t.Bytes(), c.packetSize); err != nil {
				return
			}
			continue
		}
		reqCtx, reqCancel := context.WithCancel(ctx)
		c.mu.Lock()
		c.cancel = reqCancel
		c.mu.Unlock()
		reply, err := c.handle(reqCtx, m)
		c.mu.Lock()
		c.cancel = nil
		c.mu.Unlock()
		reqCancel()
		if err != nil {
			if !errors.Is(err, errDrop) {
				s.log.Printf("%s: %v", nc.RemoteAddr(), err)
			}
			return
		}
		if reply == nil {
			continue // interrupted before it ran: the attention's DONE answers
		}
		if err := writeMessage(nc, pktReply, reply, c.packetSize); err != nil {
			return
		}
	}
}

// interrupt cancels the request being run (an attention arrived).
func (c *conn) interrupt() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel != nil {
		c.cancel()
	}
}

// handshake answers PRELOGIN and LOGIN7.
func (c *conn) handshake(br *bufio.Reader) error {
	m, err := readMessage(br)
	if err != nil {
		return err
	}
	if m.typ != pktPrelogin {
		return fmt.Errorf("expected PRELOGIN, got a message of type %d (encrypt=strict is not supported)", m.typ)
	}
	if err := writeMessage(c.nc, pktReply, preloginReply(), c.packetSize); err != nil {
		return err
	}
	m, err = readMessage(br)
	if err != nil {
		return err
	}
	if m.typ != pktLogin7 {
		return fmt.Errorf("expected LOGIN7, got a message of type %d (the stand-in does not support encryption: use encrypt=disable)", m.typ)
	}
	l, err := parseLogin7(m.data)
	if err != nil {
		return err
	}
	var t tokens
	if c.s.Password != "" && (l.user != c.s.User || l.password != c.s.Password) {
		t.message(tokError, errorf(errLoginFailed, 14, "Login failed for user '%s'.", l.user))
		t.done(tokDone, doneError, 0, 0)
		_ = writeMessage(c.nc, pktReply, t.Bytes(), c.packetSize)
		return fmt.Errorf("login failed for user %q", l.user)
	}
	if l.packetSize >= 512 && l.packetSize <= maxPacket {
		c.packetSize = int(l.packetSize)
	}
	c.sess.db = l.database
	if c.sess.db == "" {
		c.sess.db = "master"
	}
	t.envChangeText(envDatabase, c.sess.db, "master")
	t.message(tokInfo, &sqlError{Number: 5701, Class: 0, State: 2,
		Message: fmt.Sprintf("Changed database context to '%s'.", c.sess.db)})
	t.envChangeBytes(envCollation, collation, nil)
	t.envChangeText(envLanguage, "us_english", "")
	t.message(tokInfo, &sqlError{Number: 5703, Class: 0, State: 1, Message: "Changed language setting to us_english."})
	var ack tokens
	ack.u8(1)                                 // interface: T-SQL
	ack.Write([]byte{0x74, 0x00, 0x00, 0x04}) // TDS 7.4
	ack.bVarChar("Microsoft SQL Server")
	ack.Write([]byte{16, 0, 0x03, 0xE8}) // 16.0.1000, as SQL Server 2022 RTM reports
	t.u8(tokLoginAck)
	t.u16(uint16(ack.Len()))
	t.Write(ack.Bytes())
	ps := fmt.Sprint(c.packetSize)
	t.envChangeText(envPacketSize, ps, ps)
	t.done(tokDone, doneFinal, 0, 0)
	return writeMessage(c.nc, pktReply, t.Bytes(), c.packetSize)
}

// preloginReply is the PRELOGIN answer: version, and encryption not
// supported, so that the client does not start TLS.
func preloginReply() []byte {
	fields := []struct {
		token byte
		data  []byte
	}{
		{0, []byte{16, 0, 0x03, 0xE8, 0, 0}}, // VERSION
		{1, []byte{2}},                       // ENCRYPTION: ENCRYPT_NOT_SUP
		{2, []byte{0}},                       // INSTOPT
		{3, nil},                             // THREADID
		{4, []byte{0}},                       // MARS: off
	}
	offset := 5*len(fields) + 1
	var head, body []byte
	for _, f := range fields {
		head = append(head, f.token)
		head = binary.BigEndian.AppendUint16(head, uint16(offset+len(body)))
		head = binary.BigEndian.AppendUint16(head, uint16(len(f.data)))
		body = append(body, f.data...)
	}
	return append(append(head, 0xFF), body...)
}

type login7 struct {
	packetSize               uint32
	user, password, database string
}

// parseLogin7 reads the fields of a LOGIN7 message the stand-in uses.
func parseLogin7(b []byte) (login7, error) {
	var l login7
	if len(b) < 94 {
		return l, fmt.Errorf("LOGIN7 of %d bytes", len(b))
	}
	field := func(at int) ([]byte, error) {
		off, n := int(binary.LittleEndian.Uint16(b[at:])), 2*int(binary.LittleEndian.Uint16(b[at+2:]))
		if off+n > len(b) {
			return nil, fmt.Errorf("LOGIN7 field at %d out of bounds", at)
		}
		return b[off : off+n], nil
	}
	l.packetSize = binary.LittleEndian.Uint32(b[8:])
	user, err := field(40)
	if err != nil {
		return l, err
	}
	pw, err := field(44)
	if err != nil {
		return l, err
	}
	db, err := field(68)
	if err != nil {
		return l, err
	}
	clear := make([]byte, len(pw))
	for i, x := range pw {
		x ^= 0xA5
		clear[i] = x<<4 | x>>4
	}
	l.user, l.password, l.database = ucs2String(user), ucs2String(clear), ucs2String(db)
	return l, nil
}

// handle runs one request and returns the reply's payload. It returns nil
// and no error when the request was interrupted before it ran.
func (c *conn) handle(ctx context.Context, m message) ([]byte, error) {
	var t tokens
	if m.status&(statusResetConn|statusResetConn2) != 0 {
		if m.status&statusResetConn != 0 && c.sess.tx != nil {
			c.s.eng.end(&c.sess, false)
		}
		t.envChangeBytes(envResetAck, nil, nil)
	}
	r := &reader{b: m.data}
	switch m.typ {
	case pktSQLBatch:
		r.skipAllHeaders()
		if r.err != nil {
			return nil, r.err
		}
		return c.batch(ctx, &t, ucs2String(r.b))
	case pktRPC:
		r.skipAllHeaders()
		return c.rpc(ctx, &t, r)
	case pktTransMgr:
		r.skipAllHeaders()
		return c.transMgr(&t, r)
	}
	return nil, fmt.Errorf("unexpected message of type %d", m.typ)
}

// batch runs a SQL batch: go-mssqldb's ping ("select 1;"), or one of the
// provider's statements that take no parameters.
func (c *conn) batch(ctx context.Context, t *tokens, text string) ([]byte, error) {
	norm := strings.ToLower(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(text), ";")))
	if norm == "select 1" {
		cols := []column{{"", sqlType{name: "int"}, false}}
		t.colMetadata(cols)
		t.row(cols, []any{int64(1)})
		t.done(tokDone, doneCount|c.inXct(), cmdSelect, 1)
		return t.Bytes(), nil
	}
	st := c.s.eng.recognise(text)
	if st == nil || st.params != "" {
		c.s.eng.stats.errors.Add(1)
		c.s.log.Printf("unknown batch: %.200q", text)
		t.message(tokError, unknownStatement(text))
		t.done(tokDone, doneError|c.inXct(), 0, 0)
		return t.Bytes(), nil
	}
	res, serr, err := c.run(ctx, st, nil)
	if err != nil || (res == nil && serr == nil) {
		return nil, err
	}
	if serr != nil {
		c.writeError(t, serr)
		t.done(tokDone, doneError|c.inXct(), 0, 0)
		return t.Bytes(), nil
	}
	c.writeResult(t, res, tokDone, 0)
	return t.Bytes(), nil
}

func unknownStatement(text string) *sqlError {
	word := strings.Fields(text)
	near := ""
	if len(word) > 0 {
		near = word[0]
	}
	return errorf(errSyntax, 15, "Incorrect syntax near '%s'. (tdsstub runs only the statements of package providers/sqlserver/tsql)", near)
}

// inXct returns doneInXct if the session is in a transaction.
func (c *conn) inXct() uint16 {
	if c.sess.tx != nil {
		return doneInXct
	}
	return 0
}

// rpcParam is one parameter of an RPC request.
type rpcParam struct {
	name string // lower case, without '@'; "" for a positional one
	val  wire
}

// rpc runs an RPC request: sp_executesql, or an administrative procedure
// of the stand-in.
func (c *conn) rpc(ctx context.Context, t *tokens, r *reader) ([]byte, error) {
	var proc string
	if n := r.uint16(); n == 0xFFFF {
		switch id := r.uint16(); id {
		case 10:
			proc = "sp_executesql"
		default:
			proc = fmt.Sprintf("procedure id %d", id)
		}
	} else {
		proc = ucs2String(r.take(2 * int(n)))
	}
	r.uint16() // option flags
	var params []rpcParam
	for r.err == nil && len(r.b) > 0 {
		if r.b[0] == 0xFF || r.b[0] == 0x80 {
			return nil, errors.New("batched RPC requests are not supported")
		}
		name := strings.ToLower(strings.TrimPrefix(r.bVarChar(), "@"))
		r.byte() // status flags
		v, err := readParamValue(r)
		if err != nil {
			return nil, err
		}
		params = append(params, rpcParam{name: name, val: v})
	}
	if r.err != nil {
		return nil, r.err
	}
	name := strings.ToLower(proc)
	name = strings.TrimPrefix(strings.TrimPrefix(name, "sys."), "dbo.")
	switch name {
	case "sp_executesql":
		return c.executeSQL(ctx, t, params)
	case "sp_tdsstub_fault", "sp_tdsstub_clear", "sp_tdsstub_info":
		ret, serr := c.admin(t, name, params)
		if serr != nil {
			c.writeError(t, serr)
			return c.rpcEnd(t, true), nil
		}
		return c.rpcEndStatus(t, false, ret), nil
	}
	c.writeError(t, errorf(errNoProc, 16, "Could not find stored procedure '%s'.", proc))
	return c.rpcEnd(t, true), nil
}

// rpcEnd finishes an RPC reply with its return status and DONEPROC.
func (c *conn) rpcEnd(t *tokens, failed bool) []byte { return c.rpcEndStatus(t, failed, 0) }

func (c *conn) rpcEndStatus(t *tokens, failed bool, ret int32) []byte {
	status := uint16(doneFinal) | c.inXct()
	if failed {
		status |= doneError
		ret = -6
	}
	t.returnStatus(ret)
	t.done(tokDoneProc, status, cmdExecute, 0)
	return t.Bytes()
}

// xactAbort names the statements that run under SET XACT_ABORT ON: an
// error in them rolls back the session's transaction.
var xactAbort = map[string]bool{"create": true, "update": true, "delete": true, "init": true, "init-schema": true}

// executeSQL runs sp_executesql: @stmt, @params, then the values.
func (c *conn) executeSQL(ctx context.Context, t *tokens, params []rpcParam) ([]byte, error) {
	fail := func(e *sqlError) ([]byte, error) {
		c.s.eng.stats.errors.Add(1)
		c.writeError(t, e)
		return c.rpcEnd(t, true), nil
	}
	if len(params) == 0 || params[0].val.null ||
		(params[0].val.typ != typNVarChar && params[0].val.typ != typNChar) {
		return fail(errorf(214, 16, "Procedure expects parameter '@statement' of type 'ntext/nchar/nvarchar'."))
	}
	text := ucs2String(params[0].val.data)
	decls := ""
	values := params[1:]
	if len(params) > 1 && (params[1].name == "" || params[1].name == "params") {
		if !params[1].val.null {
			decls = ucs2String(params[1].val.data)
		}
		values = params[2:]
	}
	st := c.s.eng.recognise(text)
	if st == nil {
		c.s.log.Printf("unknown statement: %.300q", text)
		return fail(unknownStatement(text))
	}
	if decls != st.params {
		want, _ := parseDecls(st.params)
		got, err := parseDecls(decls)
		if err != nil {
			return fail(errorf(errSyntax, 15, "Incorrect syntax near '%s'.", decls))
		}
		for _, p := range want {
			found := false
			for _, q := range got {
				found = found || (q.name == p.name && q.typ == p.typ)
			}
			if !found {
				return fail(errorf(errMustDeclare, 15, "Must declare the scalar variable \"@%s\".", p.name))
			}
		}
		return fail(errorf(8145, 16, "The parameter declarations %q are not the ones of statement %s.", decls, st.name))
	}
	declared, err := parseDecls(st.params)
	if err != nil {
		return nil, err
	}
	args := make(map[string]any, len(declared))
	given := make(map[string]wire, len(values))
	for i, v := range values {
		switch {
		case v.name != "":
			given[v.name] = v.val
		case i < len(declared):
			given[declared[i].name] = v.val
		}
	}
	for _, p := range declared {
		w, ok := given[p.name]
		if !ok {
			return fail(errorf(errParamNotGiven, 16,
				"The parameterized query '(%s)' expects the parameter '@%s', which was not supplied.", st.params, p.name))
		}
		v, err := convert(w, p.typ)
		if err != nil {
			var serr *sqlError
			if errors.As(err, &serr) {
				return fail(serr)
			}
			return nil, err
		}
		args[p.name] = v
	}
	res, serr, err := c.run(ctx, st, args)
	if err != nil || (res == nil && serr == nil) {
		return nil, err
	}
	if serr != nil {
		c.s.eng.stats.errors.Add(1)
		c.writeError(t, serr)
		t.done(tokDoneInProc, doneError|doneMore|c.inXct(), 0, 0)
		return c.rpcEnd(t, true), nil
	}
	c.writeResult(t, res, tokDoneInProc, doneMore)
	return c.rpcEnd(t, false), nil
}

// run runs a recognised statement under the engine lock, applying any
// injected fault. It returns a nil result and error when ctx ended while
// the statement waited for the lock.
func (c *conn) run(ctx context.Context, st *recognised, args map[string]any) (*result, *sqlError, error) {
	f := c.s.eng.faults.take(st.name, st.table)
	if f != nil {
		switch f.action {
		case actDropBefore:
			return nil, nil, errDrop
		case actError:
			e := injected(f.number)
			if xactAbort[st.name] {
				e.rollback = true
			}
			return nil, e, nil
		}
	}
	release, err := c.s.eng.acquire(ctx, &c.sess)
	if err != nil {
		return nil, nil, nil
	}
	res, serr := c.s.eng.exec(&c.sess, st, args)
	release()
	if serr != nil && xactAbort[st.name] {
		serr.rollback = true
	}
	if f != nil && f.action == actDropAfter {
		// The statement ran (and, outside a transaction, committed); its
		// answer is lost with the connection.
		return nil, nil, errDrop
	}
	return res, serr, nil
}

// writeError writes an ERROR token, first rolling back the session's
// transaction if the error ends it (with the ENVCHANGE that tells the
// client).
func (c *conn) writeError(t *tokens, e *sqlError) {
	t.message(tokError, e)
	if e.rollback && c.sess.tx != nil {
		id := c.s.eng.end(&c.sess, false)
		t.envChangeBytes(envRollback, nil, binary.LittleEndian.AppendUint64(nil, id))
	}
}

// writeResult writes a statement's result set (if any) and its DONE token.
func (c *conn) writeResult(t *tokens, res *result, doneTok byte, more uint16) {
	if res.cols != nil {
		t.colMetadata(res.cols)
		for _, row := range res.rows {
			t.row(res.cols, row)
		}
		if !res.hasCount {
			res.count, res.hasCount = int64(len(res.rows)), true
		}
	}
	status := more | c.inXct()
	if res.hasCount {
		status |= doneCount
	}
	t.done(doneTok, status, res.cmd, uint64(max(res.count, 0)))
}

// Transaction manager request types (MS-TDS 2.2.6.9).
const (
	tmBegin    = 5
	tmCommit   = 7
	tmRollback = 8
)

// transMgr answers BEGIN, COMMIT and ROLLBACK requests.
func (c *conn) transMgr(t *tokens, r *reader) ([]byte, error) {
	kind := r.uint16()
	if r.err != nil {
		return nil, r.err
	}
	name := map[uint16]string{tmBegin: "begin", tmCommit: "commit", tmRollback: "rollback"}[kind]
	if name == "" {
		return nil, fmt.Errorf("transaction manager request %d is not supported", kind)
	}
	f := c.s.eng.faults.take(name, "")
	if f != nil {
		switch f.action {
		case actDropBefore:
			return nil, errDrop
		case actError:
			c.writeError(t, injected(f.number))
			t.done(tokDone, doneError|c.inXct(), 0, 0)
			return t.Bytes(), nil
		}
	}
	switch kind {
	case tmBegin:
		id, serr := c.s.eng.begin(&c.sess)
		if serr != nil {
			c.writeError(t, serr)
			t.done(tokDone, doneError|c.inXct(), 0, 0)
			return t.Bytes(), nil
		}
		t.envChangeBytes(envBeginTran, binary.LittleEndian.AppendUint64(nil, id), nil)
	default:
		if c.sess.tx == nil {
			if kind == tmCommit {
				c.writeError(t, errorf(errNoCommit, 16, "The COMMIT TRANSACTION request has no corresponding BEGIN TRANSACTION."))
			} else {
				c.writeError(t, errorf(errNoRollback, 16, "The ROLLBACK TRANSACTION request has no corresponding BEGIN TRANSACTION."))
			}
			t.done(tokDone, doneError, 0, 0)
			return t.Bytes(), nil
		}
		id := c.s.eng.end(&c.sess, kind == tmCommit)
		typ := byte(envCommitTran)
		if kind == tmRollback {
			typ = envRollback
		}
		t.envChangeBytes(typ, nil, binary.LittleEndian.AppendUint64(nil, id))
	}
	if f != nil && f.action == actDropAfter {
		return nil, errDrop
	}
	t.done(tokDone, doneFinal|c.inXct(), 0, 0)
	return t.Bytes(), nil
}
