// Where the two windows of one iperf3 --bidir test (`speedcli HOST --iperf3 --bidir`) lie on speedcli's
// clock, and how long they were open together: pure, so the unit tests give it exact times.
//
// The download's window is speedcli's own: it closed at `download_closed_ns` after `download_seconds`. The
// upload's is the server's receiver span after its warm-up, and the results exchange carries only its length
// (iperf3's "end_time" - "start_time"; "start_time" is always 0, the end of its warm-up). Where it lies comes
// from its start: an iperf3 server starts it at its TEST_RUNNING (iperf_init_test, reset when -O ends) and
// speedsrv at its TEST_RUNNING or the first byte, if later; speedcli starts sending when it reads
// TEST_RUNNING, one one-way trip after the server sent it. So the upload's window is placed from
// `running_ns` + the warm-up, for its length: late by that one-way trip. Its end is where the server stopped
// counting, TEST_END's arrival for an iperf3 server and the later of that and the last byte for speedsrv,
// which no message tells speedcli (docs/methodology.md, "Against an iperf3 server", --bidir).
#pragma once

#include <cstdint>

namespace speed::client {

struct iperf3_bidir_windows {
    std::int64_t running_ns = 0;          // when speedcli read TEST_RUNNING and started its upload
    std::int64_t download_closed_ns = 0;  // when speedcli's download window closed
    double download_seconds = 0.0;        // the download window's length, after its warm-up
    double upload_warm_up_seconds = 0.0;  // the whole seconds of -O the server was told of
    double upload_seconds = 0.0;          // the server's span from its results (the peer's number)
};

// Seconds both windows were open together, at least 0.
double iperf3_bidir_overlap_seconds(const iperf3_bidir_windows& windows);

}  // namespace speed::client
