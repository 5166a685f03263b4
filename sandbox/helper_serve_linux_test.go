package sandbox

import (
	"encoding/json"
	"reflect"
	"testing"
)

// appendReply encodes a reply as json.Marshal does, every field of it.
func TestAppendReplyIsJSON(t *testing.T) {
	if n := reflect.TypeOf(residentReply{}).NumField(); n != 6 {
		t.Fatalf("residentReply has %d fields; appendReply encodes 6", n)
	}
	for _, rep := range []residentReply{
		{},
		{Ready: true},
		{Status: 256, CPU: 1234567},
		{Status: -1, CPU: -5},
		{StartErr: `fork/exec "x": no such file`},
		{Err: "bad \x00 \u2028 <&> \xff"},
		{Status: 9, CPU: 1, Retire: true},
		{Ready: true, Status: 1, CPU: 2, StartErr: "a", Err: "b", Retire: true},
	} {
		want, err := json.Marshal(rep)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendReply(nil, rep); string(got) != string(want) {
			t.Errorf("%+v: got %s, want %s", rep, got, want)
		}
	}
}
