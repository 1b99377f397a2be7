package servertest

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gorilla/websocket"

	hubsync "github.com/onecard-hub/onecard/hub/sync"
	"github.com/onecard-hub/onecard/sm"
)

// Raw is a bare protocol connection for attack tests: it sends whatever
// it is told, correct or not.
type Raw struct {
	WS        *websocket.Conn
	Challenge *hubsync.Challenge
}

// DialRaw opens a plain ws connection to url and reads the challenge.
func DialRaw(url string) (*Raw, error) {
	d := websocket.Dialer{Subprotocols: []string{hubsync.Subprotocol}, HandshakeTimeout: 5 * time.Second}
	ws, resp, err := d.Dial(url, http.Header{})
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	r := &Raw{WS: ws}
	_, m, err := r.Read()
	if err != nil {
		ws.Close()
		return nil, err
	}
	ch, ok := m.(*hubsync.Challenge)
	if !ok {
		ws.Close()
		return nil, fmt.Errorf("first frame %s, want challenge", m.Type())
	}
	r.Challenge = ch
	return r, nil
}

// Hello answers the challenge as terminal term signing with key, and
// returns the hub's answer (a Welcome, or the Error refusing it).
func (r *Raw) Hello(term string, key *sm.PrivateKey) (hubsync.Message, error) {
	sig, err := hubsync.SignHello(key, r.Challenge.HubID, term, r.Challenge.Nonce)
	if err != nil {
		return nil, err
	}
	if err := r.Send(1, &hubsync.Hello{TerminalID: term, Nonce: r.Challenge.Nonce, Signature: sig}); err != nil {
		return nil, err
	}
	_, m, err := r.Read()
	return m, err
}

// Send writes one message.
func (r *Raw) Send(id uint64, m hubsync.Message) error {
	b, err := hubsync.EncodeLimits(id, m, hubsync.Limits{MaxBatch: 1 << 16, MaxMessage: 64 << 20})
	if err != nil {
		return err
	}
	return r.SendRaw(b)
}

// SendRaw writes one text frame as is.
func (r *Raw) SendRaw(b []byte) error {
	r.WS.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return r.WS.WriteMessage(websocket.TextMessage, b)
}

// Read reads one message (5 s deadline).
func (r *Raw) Read() (uint64, hubsync.Message, error) {
	r.WS.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, b, err := r.WS.ReadMessage()
	if err != nil {
		return 0, nil, err
	}
	return hubsync.Decode(b, hubsync.Limits{MaxBatch: 1 << 16, MaxMessage: 64 << 20})
}

// ReadError reads until the hub's connection error or the end of the
// connection, returning the error's code, or "close:N" for a WebSocket
// close frame with code N (1009 for a frame above the read limit), or ""
// if the connection ended without either.
func (r *Raw) ReadError() string {
	for {
		_, m, err := r.Read()
		var ce *websocket.CloseError
		if errors.As(err, &ce) && ce.Code != websocket.CloseNormalClosure {
			return fmt.Sprintf("close:%d", ce.Code)
		}
		if err != nil {
			return ""
		}
		if e, ok := m.(*hubsync.Error); ok && e.Fatal {
			return e.Code
		}
	}
}

// Close closes the connection.
func (r *Raw) Close() error { return r.WS.Close() }

// ErrNotAcks is returned by Batch when the answer is not an Acks.
var ErrNotAcks = errors.New("answer is not acks")

// Batch sends records and returns the hub's acknowledgements.
func (r *Raw) Batch(id uint64, records ...[]byte) (*hubsync.Acks, error) {
	if err := r.Send(id, &hubsync.Batch{Records: records}); err != nil {
		return nil, err
	}
	for {
		gid, m, err := r.Read()
		if err != nil {
			return nil, err
		}
		if gid != id {
			continue // a push
		}
		if a, ok := m.(*hubsync.Acks); ok {
			return a, nil
		}
		if e, ok := m.(*hubsync.Error); ok {
			return nil, e
		}
		return nil, ErrNotAcks
	}
}
