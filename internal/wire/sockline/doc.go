// Package sockline defines the lines of beatwrap's progress socket: the
// report an agent writes (Report, ParseReport), the query lines that ask
// beatwrap something instead (Query, ParseLine, with the names beatwrap
// answers, such as QueryHealth and its Health), and the reply each line gets
// (Reply, MarshalQueryReply).
//
// It is the wire format of the socket, as package wire is of the beat: a
// report's numbers are held to wire's ranges and its task is cut to
// wire.MaxTaskLength, as a beat's are, and what is refused is refused naming
// the field. Package progress serves and sends these lines.
package sockline
