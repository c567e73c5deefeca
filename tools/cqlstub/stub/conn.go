package stub

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/datastax/go-cassandra-native-protocol/frame"
	"github.com/datastax/go-cassandra-native-protocol/message"
	"github.com/datastax/go-cassandra-native-protocol/primitive"
)

// The connection layer: the stub accepts TCP connections itself and uses
// the protocol library's frame codec to read requests and write answers.
// (The library's own CqlServer has data races between a connection's Close
// and its writer goroutine, which -race reports and which can leave Close
// waiting forever; this layer has one goroutine per connection and nothing
// to race.) Requests of a connection are handled in order; gocql keeps
// several requests in flight per connection, which the stub simply
// answers one after the other.

// supportedVersion reports whether the stub speaks protocol version v: 3
// and 4 (gocql negotiates 4; version 5's framing is not implemented).
func supportedVersion(v primitive.ProtocolVersion) bool {
	return v == primitive.ProtocolVersion3 || v == primitive.ProtocolVersion4
}

// serve runs one client connection until it closes or the server does.
func (s *Server) serve(c net.Conn) {
	defer s.done.Done()
	defer s.untrack(c)
	codec := frame.NewCodec()
	r := bufio.NewReaderSize(c, 64<<10)
	w := bufio.NewWriterSize(c, 64<<10)
	ready := false // STARTUP done
	for {
		req, err := codec.DecodeFrame(r)
		if err != nil {
			var ve *frame.ProtocolVersionErr
			if errors.As(err, &ve) {
				// Answer in the highest version the stub speaks, as Cassandra
				// does, so that the driver can negotiate down.
				s.write(codec, w, frame.NewFrame(primitive.ProtocolVersion4, 0, &message.ProtocolError{
					ErrorMessage: "Invalid or unsupported protocol version (" + ve.Version.String() + "); supported versions are (3/v3, 4/v4)"}))
				_ = w.Flush()
			} else if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !s.closed.Load() {
				s.cfg.Logger.Debug("connection closed", "remote", c.RemoteAddr(), "err", err)
			}
			return
		}
		v := req.Header.Version
		var resp message.Message
		switch m := req.Body.Message.(type) {
		case *message.Options:
			resp = &message.Supported{Options: map[string][]string{"CQL_VERSION": {"3.4.4"}, "COMPRESSION": {}}}
		case *message.Startup:
			if comp := m.GetCompression(); comp != primitive.CompressionNone {
				resp = &message.ProtocolError{ErrorMessage: "cqlstub: compression " + string(comp) + " is not supported"}
			} else {
				ready, resp = true, &message.Ready{}
			}
		default:
			switch {
			case !supportedVersion(v):
				resp = &message.ProtocolError{ErrorMessage: "Invalid or unsupported protocol version; supported versions are (3/v3, 4/v4)"}
			case !ready:
				resp = &message.ProtocolError{ErrorMessage: "Unexpected message " + req.Header.OpCode.String() + ", expecting STARTUP or OPTIONS."}
			default:
				resp = s.request(c, req)
			}
		}
		if resp == nil {
			continue // an injected fault: no answer
		}
		if !s.write(codec, w, frame.NewFrame(v, req.Header.StreamId, resp)) {
			return
		}
		if r.Buffered() == 0 { // answer at once unless more requests are already here
			if err := w.Flush(); err != nil {
				return
			}
		}
	}
}

func (s *Server) write(codec frame.Codec, w *bufio.Writer, f *frame.Frame) bool {
	if err := codec.EncodeFrame(f, w); err != nil {
		s.cfg.Logger.Error("encoding an answer", "err", err, "frame", f.String())
		return false
	}
	return true
}

// request answers a request once the connection is ready: REGISTER,
// USE, the system tables, then the data and schema statements.
func (s *Server) request(c net.Conn, req *frame.Frame) message.Message {
	var msg message.Message
	var err error
	switch m := req.Body.Message.(type) {
	case *message.Register:
		return &message.Ready{} // the stub never sends events
	case *message.Query:
		s.counts.query.Add(1)
		if ks, ok := useStatement(m.Query); ok {
			return &message.SetKeyspaceResult{Keyspace: ks}
		}
		if res, ok := s.systemQuery(m.Query, c); ok {
			return res
		}
		msg, err = s.query(m)
	case *message.Prepare:
		s.counts.prepare.Add(1)
		msg, err = s.prepare(m)
	case *message.Execute:
		s.counts.execute.Add(1)
		msg, err = s.execute(m, c)
	case *message.Batch:
		s.counts.batch.Add(1)
		msg, err = s.batch(m)
	default:
		return &message.ProtocolError{ErrorMessage: "cqlstub: unsupported request " + req.Header.OpCode.String()}
	}
	if err != nil {
		s.counts.errors.Add(1)
		var re *requestError
		if errors.As(err, &re) {
			return re.msg
		}
		return &message.ServerError{ErrorMessage: err.Error()}
	}
	return msg // nil: an injected fault, no answer
}

// useStatement recognises USE ks (the driver sends it when its session
// has a keyspace). The statements the stub executes name their keyspace.
func useStatement(text string) (string, bool) {
	f := strings.Fields(normalize(text))
	if len(f) != 2 || !strings.EqualFold(f[0], "use") {
		return "", false
	}
	ks := f[1]
	if strings.HasPrefix(ks, `"`) && strings.HasSuffix(ks, `"`) && len(ks) >= 2 {
		return ks[1 : len(ks)-1], true
	}
	return strings.ToLower(ks), true
}
