package compat_test

import (
	"encoding/json"
	"fmt"

	"wsproxy/compat"
	"wsproxy/dataflow"
)

func ExampleAppendData() {
	md := &dataflow.MarketData{
		Exchange:  "binance",
		Symbol:    "BTC/USDT",
		Type:      "trade",
		Timestamp: 1723190400000,
		Data:      json.RawMessage(`{"id":"123","price":"50000.1"}`),
	}
	buf := make([]byte, 0, 512) // typically a pooled buffer
	buf = compat.AppendData(buf, md, 1723190400003)
	fmt.Println(string(buf))
	// Output:
	// {"type":"trade","payload":{"type":"trade","exchange":"binance","symbol":"BTC/USDT","data":{"id":"123","price":"50000.1"},"timestamp":1723190400000},"timestamp":1723190400003}
}

func ExampleDecodeClient() {
	msg, perr := compat.DecodeClient([]byte(`{"type":"subscribe","payload":{"symbols":"BTC/USDT"}}`))
	if perr != nil {
		fmt.Println(string(compat.AppendError(nil, perr.Code, perr.Message, 1723190400000)))
		return
	}
	fmt.Println(msg.Kind)
	// Output:
	// {"type":"error","payload":{"code":"INVALID_FILTER","message":"\"payload.symbols\" must be an array of strings"},"timestamp":1723190400000}
}
