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

// parseReply decodes what appendReply encodes, and anything else as
// json.Unmarshal does.
func TestParseReplyIsJSON(t *testing.T) {
	inputs := []string{
		"", "{", "}", "{}", "[]", "null", `{"Ready":true}`, `{"Ready":false}`, `{"ready":true}`,
		`{"Status":256,"CPU":1234567}`, `{"Status":-1,"CPU":-5}`, `{"Status":01}`, `{"Status":+1}`,
		`{"Status":-0}`, `{"Status":1e3}`, `{"Status":99999999999999999999}`, `{"Status":}`, `{"Status"}`,
		`{"Status":1,}`, `{,"Status":1}`, `{"Status":1,"Status":2}`, `{"Other":1}`, `{"Status":"1"}`,
		`{"StartErr":"a,b:c","Status":3}`, `{"Err":"x\"y"}`, `{"Status": 1}`, `{"Status":1}x`,
		`{"Status":9,"CPU":1,"Retire":true}`, `{"Retire":1}`,
	}
	for _, rep := range []residentReply{
		{}, {Ready: true}, {Status: 256, CPU: 1234567}, {Status: -1, CPU: -5},
		{StartErr: `fork/exec "x": no such file`}, {Err: "bad \x00 \u2028 <&> \xff"},
		{Status: 9, CPU: 1, Retire: true}, {Ready: true, Status: 1, CPU: 2, StartErr: "a", Err: "b", Retire: true},
	} {
		inputs = append(inputs, string(appendReply(nil, rep)))
	}
	for _, in := range inputs {
		var want residentReply
		wantErr := json.Unmarshal([]byte(in), &want)
		got, err := parseReply([]byte(in))
		if (err != nil) != (wantErr != nil) || got != want {
			t.Errorf("%s: got %+v, %v; want %+v, %v", in, got, err, want, wantErr)
		}
	}
}
