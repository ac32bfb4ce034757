package migrate

import (
	"bytes"

	"gopkg.in/yaml.v3"
)

// node is a YAML mapping built key by key, in insertion order, with a
// line comment per key (where the value came from).
type node struct{ n *yaml.Node }

func newMap() *node { return &node{&yaml.Node{Kind: yaml.MappingNode}} }

// child returns the mapping under key, adding it if needed.
func (m *node) child(key string) *node {
	for i := 0; i+1 < len(m.n.Content); i += 2 {
		if m.n.Content[i].Value == key {
			return &node{m.n.Content[i+1]}
		}
	}
	c := newMap()
	m.n.Content = append(m.n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, c.n)
	return c
}

// set adds key: value with comment on the key's line.
func (m *node) set(key string, value any, comment string) { m.setNode(key, value, comment) }

// setNode adds key with any encodable value (lists, maps).
func (m *node) setNode(key string, value any, comment string) {
	v := &yaml.Node{}
	if err := v.Encode(value); err != nil {
		panic(err) // only values this package builds
	}
	k := &yaml.Node{Kind: yaml.ScalarNode, Value: key}
	if v.Kind == yaml.ScalarNode || len(v.Content) == 0 {
		v.LineComment = comment
		if v.Kind != yaml.ScalarNode {
			v.Style = yaml.FlowStyle
		}
	} else {
		k.HeadComment = comment
	}
	m.n.Content = append(m.n.Content, k, v)
}

func encode(doc *yaml.Node) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
