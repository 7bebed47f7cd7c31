// Package jsonscan reads JSON text value by value, as encoding/json reads it,
// without reflection and without allocating: a Scanner walks one document,
// and the caller, who knows the shape it expects, asks for an object's keys
// and for each value as a string, a number, a bool or a value to skip.
//
// It knows nothing of beats; package wire builds its beat decoder on it. Each
// method reports false when the text is not what was asked for, or is a
// case it does not copy from encoding/json (a string key with escapes or
// non-ASCII bytes, an integer written with a fraction or an exponent, a
// number out of the range of its type, nesting deeper than 64): the caller
// then gives up and hands the document to encoding/json, so a Scanner never
// decides alone that a document is bad. When a method succeeds, its value is
// the one json.Unmarshal would have stored.
package jsonscan
