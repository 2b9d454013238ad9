package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxFileBytes bounds a config file.
const maxFileBytes = 1 << 20

// LoadFile reads the config file at path onto c: YAML if its name ends in
// .yaml or .yml (DecodeYAMLFile), else JSON (DecodeFile).
func LoadFile(path string, c *Config) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return fmt.Errorf("config: %s: %w", path, err)
	}
	decode := DecodeFile
	if isYAML(path) {
		decode = DecodeYAMLFile
	}
	if err := decode(data, c); err != nil {
		return fmt.Errorf("%w (in %s)", err, path)
	}
	return nil
}

// DecodeFile applies a JSON config file onto c. The file is one object
// whose keys are flag names ("data-dir", "initial-cluster", ...); a key
// that is not a setting, a repeated key, or "config" is an error. Every
// value may be a string in flag syntax ("tick-interval": "100ms"); integer
// settings also take JSON numbers, "join" an array of addresses and
// "initial-cluster" an object from node name to peer address. Settings the
// file omits keep their value in c.
//
//	{
//	  "name": "n2",
//	  "data-dir": "/var/lib/cairn",
//	  "listen-peer": "10.0.0.2:7380",
//	  "initial-cluster": {"n1": "10.0.0.1:7380", "n2": "10.0.0.2:7380"},
//	  "election-ticks": 20
//	}
func DecodeFile(data []byte, c *Config) error {
	if len(data) > maxFileBytes {
		return fmt.Errorf("config: file is over %d bytes", maxFileBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return errors.New("config: file is not a JSON object")
	}
	seen := map[string]bool{}
	out := c.clone()
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		key, ok := tok.(string)
		if !ok {
			return errors.New("config: malformed object key")
		}
		opt := lookupOption(key)
		if opt == nil || key == configOption {
			return fmt.Errorf("config: unknown key %q (keys are flag names such as \"data-dir\")", key)
		}
		if seen[key] {
			return fmt.Errorf("config: key %q appears twice", key)
		}
		seen[key] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("config: %q: %w", key, err)
		}
		s, err := valueText(opt.kind, raw)
		if err == nil {
			err = opt.set(&out, s)
		}
		if err != nil {
			return fmt.Errorf("config: %q: %w", key, err)
		}
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("config: data after the JSON object")
	}
	*c = out
	return nil
}

// valueText converts a JSON value of a setting of kind k to its text form.
func valueText(k kind, raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", errors.New("missing value")
	}
	switch c := raw[0]; {
	case c == '"':
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	case (c == 't' || c == 'f') && k == kindBool:
		return string(raw), nil // the setter rejects anything but true and false
	case (c == '-' || c >= '0' && c <= '9') && (k == kindInt || k == kindUint):
		return string(raw), nil // the setter rejects fractions and exponents
	case c == '[' && k == kindList:
		var list []string
		if err := json.Unmarshal(raw, &list); err != nil {
			return "", errors.New("want an array of strings")
		}
		for _, e := range list {
			if strings.TrimSpace(e) == "" || strings.Contains(e, ",") {
				return "", fmt.Errorf("entry %q is empty or has a comma", e)
			}
		}
		return strings.Join(list, ","), nil
	case c == '{' && k == kindCluster:
		var m map[string]string
		if err := json.Unmarshal(raw, &m); err != nil {
			return "", errors.New("want an object from node name to peer address")
		}
		checked := map[string]string{}
		for name, addr := range m {
			if err := addMember(checked, name, addr); err != nil {
				return "", err
			}
		}
		return FormatInitialCluster(checked), nil
	}
	if len(raw) > 40 {
		raw = append(raw[:37:37], "..."...)
	}
	return "", fmt.Errorf("a %s setting cannot be %s", k, raw)
}

// EncodeFile returns c as a config file that DecodeFile reads back to the
// same settings: every setting but "config", as a string in flag syntax.
func EncodeFile(c Config) []byte {
	var b bytes.Buffer
	b.WriteString("{\n")
	first := true
	for i := range options {
		opt := &options[i]
		if opt.name == configOption {
			continue
		}
		if !first {
			b.WriteString(",\n")
		}
		first = false
		k, _ := json.Marshal(opt.name)
		v, _ := json.Marshal(opt.get(&c))
		fmt.Fprintf(&b, "  %s: %s", k, v)
	}
	b.WriteString("\n}\n")
	return b.Bytes()
}
