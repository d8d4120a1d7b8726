module mptcpperf

go 1.24
