package decode

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// symbolsField is a symbols table ["", "a0", "a1", ...] of n entries.
func symbolsField(n int) []byte {
	b := lenField(nil, 4, nil)
	for i := 1; i < n; i++ {
		b = lenField(b, 4, []byte{'a', byte('0' + i/100%10), byte('0' + i/10%10), byte('0' + i%10)})
	}
	return b
}

// sortedRefs is the packed labels_refs of n labels: names 1..n (sorted,
// as symbolsField numbers them), each with value 0.
func sortedRefs(n int) []byte {
	var refs []byte
	for i := 1; i <= n; i++ {
		refs = appendVarint(refs, uint64(i))
		refs = append(refs, 0)
	}
	return lenField(nil, 1, refs)
}

// Adversarial 2.0 shapes, decoded with the budget of their own size.
func advCasesV2(def Limits) []advCase {
	var cs []advCase
	add := func(c advCase) { c.v2 = true; cs = append(cs, c) }
	emptySymbols := repeatTo(lenField(nil, 4, nil), advSize)
	// The table is charged and allocated at once, never grown.
	add(advCase{name: "rw2: a table of empty symbols", data: emptySymbols, limits: def, maxAlloc: advSize/2*symbolBytes + 1<<20})
	add(advCase{name: "rw2: a table of 1-byte symbols", data: append(lenField(nil, 4, nil), repeatTo(lenField(nil, 4, []byte{'x'}), advSize)...),
		limits: def, maxAlloc: advSize/3*symbolBytes + 1<<20})
	table := symbolsField(900)
	add(advCase{name: "rw2: one series of 899 labels", data: append(table, lenField(nil, 5, sortedRefs(899))...),
		limits: def, status: 400, msg: "max_labels_per_series"})
	add(advCase{name: "rw2: many series of 68 labels", data: append(table, repeatTo(lenField(nil, 5, sortedRefs(68)), advSize)...),
		limits: def, status: 413, msg: "max_series_per_request"})
	add(advCase{name: "rw2: many series of 68 labels, no series cap", data: append(table, repeatTo(lenField(nil, 5, sortedRefs(68)), advSize)...),
		limits: Limits{MaxLabelsPerSeries: 68}})
	add(advCase{name: "rw2: many series of 899 labels, no caps", data: append(table, repeatTo(lenField(nil, 5, sortedRefs(899)), advSize)...),
		limits: Limits{}})
	add(advCase{name: "rw2: empty series, no series cap", data: repeatTo([]byte{5<<3 | wtBytes, 0}, advSize),
		limits: Limits{}, status: 413, msg: "remote write expands to more than"})
	add(advCase{name: "rw2: one series of empty samples", data: lenField(nil, 5, repeatTo([]byte{0x12, 0x00}, advSize-8)),
		limits: def})
	add(advCase{name: "rw2: refs far out of range", data: append(table, lenField(nil, 5, lenField(nil, 1, repeatTo([]byte{0xff, 0xff, 0xff, 0xff, 0x0f}, advSize)))...),
		limits: def, status: 400, msg: "outside the symbols table", maxAlloc: 1 << 20})
	// A histogram claiming 2^32-1 buckets per span, with millions of
	// deltas: validated without allocating.
	var h []byte
	for range 1000 {
		h = lenField(h, 11, []byte{0x08, 0x00, 0x10, 0xff, 0xff, 0xff, 0xff, 0x0f})
	}
	h = lenField(h, 12, repeatTo([]byte{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, advSize/2))
	h = lenField(h, 16, make([]byte, advSize/4))
	add(advCase{name: "rw2: absurd bucket counts", data: append(table, lenField(nil, 5, lenField(sortedRefs(1), 3, h))...),
		limits: def, status: 400, msg: "positive side: spans need 4294967295000 buckets, have 419430", maxAlloc: 1 << 20})
	add(advCase{name: "rw2: exemplars of many refs", data: append(table, lenField(nil, 5, lenField(sortedRefs(1), 4, lenField(nil, 1, repeatTo([]byte{1, 2}, advSize))))...),
		limits: def, status: 400, msg: "max_labels_per_series", maxAlloc: 1 << 20})
	// 2 bytes per label charge 32, the 2.0 multiple: within the budget.
	add(advCase{name: "rw2: exemplars of many refs, no label cap", data: append(table, lenField(nil, 5, lenField(sortedRefs(1), 4, lenField(nil, 1, repeatTo([]byte{1, 2}, advSmall))))...),
		limits: Limits{}})
	nested := append(bytes.Repeat([]byte{6<<3 | wtStart}, advSize/2), bytes.Repeat([]byte{6<<3 | wtEnd}, advSize/2)...)
	add(advCase{name: "rw2: deeply nested groups", data: nested, limits: def, maxAlloc: 1 << 20})
	return cs
}

func FuzzWriteRequestV2Bounded(f *testing.F) {
	r := rand.New(rand.NewPCG(41, 42))
	for range 20 {
		f.Add(marshalV2(f, genWriteRequestV2(r)))
	}
	f.Add(append(symbolsField(20), lenField(nil, 5, sortedRefs(19))...))
	f.Add(bytes.Repeat([]byte{5<<3 | wtBytes, 0}, 100))
	f.Add(bytes.Repeat(lenField(nil, 4, nil), 100))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkBounded(t, data, kindRW2)
	})
}
