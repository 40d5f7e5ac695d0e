// Package subscription owns client filters and the index that answers "which
// subscribers want a message for (exchange, dataType, symbol)?".
//
// # Filters
//
// A [Filter] is built by [NewFilter] from what a client sent. NewFilter
// validates it against [Limits] and normalises it once, so that matching never
// has to: exchanges and data types are lower-cased, symbols go through
// [NormalizeSymbol] ("btc/usdt", "BTC-USDT" and "BTCUSDT" are one symbol), and
// duplicates are dropped. A filter matches a message when every non-empty field
// matches (AND across fields, OR within one field); an empty field matches
// everything. The data type "kline" stands for every kline_* type in
// [DataTypes]. These are the rules of shared/PROTOCOL.md, "Filter semantics".
//
// # Index
//
// [Index] maps message keys to subscribers. A filter is expanded once, when it
// is added, into the cartesian product of its exchanges × data types × symbols,
// an empty field contributing a wildcard. Matching a message is then at most
// eight lookups, whatever the number of subscribers: exchange ∈ {e, *} ×
// dataType ∈ {t, *} × symbol ∈ {s, *}. Each key holds an immutable recipient
// list; [Index.Match] hands those lists out as they are, in a [Matches] value,
// without copying and without allocating.
//
// Match normalises nothing. Its caller passes the exchange and the data type
// lower-cased and the symbol through [NormalizeSymbol], exactly as [NewFilter]
// stores them; otherwise nothing matches but the subscribers of the all-wildcard
// key.
//
// A subscriber may appear in a result more than once, when several of its
// filters (or its unfiltered mark) match through different keys. Within one key
// a subscriber appears once, however many of its filters share that key.
// Callers deliver each message once per subscriber by deduplicating, typically
// with a per-message sequence stamp on the subscriber.
//
// # Concurrency
//
// Every Index method is safe for concurrent use. Match takes no lock: it reads
// a lock-free hash table whose entries each publish their recipient list
// through an atomic pointer. Writers queue their change and one of them, the
// combiner, applies every queued change to a mutable master (per key, a
// reference count per subscriber) and publishes copy-on-write lists for the
// keys that changed, and only those, in one go. A burst of concurrent
// subscriptions is thus published in batches rather than one change at a
// time, and no change costs more than O(1) amortised per key it touches plus,
// for a removal, one copy of a 256-entry chunk and of the key's chunk
// headers. A change is visible to every Match that starts after the writer
// returns.
//
// The package does no I/O and starts no goroutines.
package subscription
