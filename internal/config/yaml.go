package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// isYAML reports whether a config file path names a YAML file.
func isYAML(path string) bool {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml":
		return true
	}
	return false
}

// DecodeYAMLFile applies a YAML config file onto c: the same keys and
// values as the JSON file (see DecodeFile), in YAML syntax:
//
//	name: n2
//	data-dir: /var/lib/cairn
//	initial-cluster: {n1: "10.0.0.1:7380", n2: "10.0.0.2:7380"}
//	election-ticks: 20
//
// The YAML is translated to JSON and decoded by DecodeFile, so both
// formats accept and refuse exactly the same settings.
func DecodeYAMLFile(data []byte, c *Config) error {
	if len(data) > maxFileBytes {
		return fmt.Errorf("config: file is over %d bytes", maxFileBytes)
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return fmt.Errorf("config: YAML: %w", err)
	}
	var more yaml.Node
	if err := dec.Decode(&more); err == nil {
		return errors.New("config: the YAML file has more than one document")
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return errors.New("config: the YAML file is not a mapping of settings")
	}
	var buf bytes.Buffer
	if err := yamlToJSON(&buf, doc.Content[0], 0); err != nil {
		return err
	}
	return DecodeFile(buf.Bytes(), c)
}

// maxYAMLDepth bounds nesting (settings are at most two levels deep).
const maxYAMLDepth = 8

// yamlToJSON writes n as JSON, keeping the order and any repetition of
// mapping keys (DecodeFile reports repeated keys).
func yamlToJSON(buf *bytes.Buffer, n *yaml.Node, depth int) error {
	if depth > maxYAMLDepth {
		return errors.New("config: the YAML file nests too deep")
	}
	switch n.Kind {
	case yaml.MappingNode:
		buf.WriteByte('{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode || k.Tag == "!!merge" {
				return fmt.Errorf("config: YAML line %d: keys must be plain strings", k.Line)
			}
			if i > 0 {
				buf.WriteByte(',')
			}
			key, _ := json.Marshal(k.Value)
			buf.Write(key)
			buf.WriteByte(':')
			if err := yamlToJSON(buf, n.Content[i+1], depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	case yaml.SequenceNode:
		buf.WriteByte('[')
		for i, e := range n.Content {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := yamlToJSON(buf, e, depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			buf.WriteString("null")
		case "!!bool":
			b, err := strconv.ParseBool(strings.ToLower(n.Value))
			if err != nil {
				return fmt.Errorf("config: YAML line %d: %q is not a boolean", n.Line, n.Value)
			}
			buf.WriteString(strconv.FormatBool(b))
		case "!!int":
			i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
			if err != nil {
				u, uerr := strconv.ParseUint(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
				if uerr != nil {
					return fmt.Errorf("config: YAML line %d: %q is not an integer", n.Line, n.Value)
				}
				buf.WriteString(strconv.FormatUint(u, 10))
				return nil
			}
			buf.WriteString(strconv.FormatInt(i, 10))
		case "!!float":
			f, err := strconv.ParseFloat(n.Value, 64)
			if err != nil {
				return fmt.Errorf("config: YAML line %d: %q is not a number", n.Line, n.Value)
			}
			b, err := json.Marshal(f)
			if err != nil {
				return fmt.Errorf("config: YAML line %d: %q is not a finite number", n.Line, n.Value)
			}
			buf.Write(b)
		default:
			s, _ := json.Marshal(n.Value)
			buf.Write(s)
		}
	case yaml.AliasNode:
		return fmt.Errorf("config: YAML line %d: aliases are not supported", n.Line)
	default:
		return fmt.Errorf("config: YAML line %d: unexpected node", n.Line)
	}
	return nil
}
