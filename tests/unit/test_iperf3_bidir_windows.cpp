// speedcli --iperf3 --bidir: where the upload's window lies on speedcli's clock and how long the two windows
// overlap (client/iperf3_bidir_windows.hpp), with exact times in ns.
#include <catch2/catch.hpp>

#include <limits>

#include "client/iperf3_bidir_windows.hpp"

using speed::client::iperf3_bidir_overlap_seconds;
using speed::client::iperf3_bidir_windows;

namespace {

constexpr std::int64_t kSecond = 1'000'000'000;

// speedcli read TEST_RUNNING at 10 s; its download window (of `download_seconds`) closed at `closed_ns`.
iperf3_bidir_windows from_ten_seconds(std::int64_t closed_ns, double download_seconds, double upload_warm_up,
                                      double upload_seconds) {
    iperf3_bidir_windows w;
    w.running_ns = 10 * kSecond;
    w.download_closed_ns = closed_ns;
    w.download_seconds = download_seconds;
    w.upload_warm_up_seconds = upload_warm_up;
    w.upload_seconds = upload_seconds;
    return w;
}

}  // namespace

TEST_CASE("iperf3 --bidir overlap: the upload's span is placed from TEST_RUNNING and its warm-up",
          "[iperf3][bidir]") {
    // The download (-O 0.5 -t 2) has its first byte at 10.0002 s, so its window runs 10.5002-12.5002 s. The
    // upload was told -O 1 (whole seconds): speedsrv's window runs from its TEST_RUNNING + 1 s to the last
    // byte it counted, 0.3 s after TEST_END (13.0 s): 2.3 s. Together from 11.0 s (the upload's start) to
    // 12.5002 s (the download's end). Placed as ending at TEST_END (the previous placement) the upload would
    // have started at 10.7 s: 1.8002 s.
    const auto w = from_ten_seconds(12 * kSecond + 500'200'000, 2.0, 1.0, 2.3);
    CHECK(iperf3_bidir_overlap_seconds(w) == 1.5002);
}

TEST_CASE("iperf3 --bidir overlap: an iperf3 server's span, ending at TEST_END's arrival",
          "[iperf3][bidir]") {
    // No warm-up. The download's window is 10.0002-12.0002 s; the upload's span is 2.0005 s from the server's
    // TEST_RUNNING (0.1 ms before speedcli read it) to TEST_END's arrival: placed 10.0-12.0005 s.
    CHECK(iperf3_bidir_overlap_seconds(from_ten_seconds(12 * kSecond + 200'000, 2.0, 0.0, 2.0005)) == 2.0);
    // An upload that ends first: its span of 1.5 s ends at 11.5 s.
    CHECK(iperf3_bidir_overlap_seconds(from_ten_seconds(12 * kSecond + 200'000, 2.0, 0.0, 1.5)) == 1.4998);
}

TEST_CASE("iperf3 --bidir overlap: windows apart overlap 0 s, and the server's span is bounded",
          "[iperf3][bidir]") {
    // The download's window is 10-11 s; the upload's starts at 12 s, after its 2-s warm-up.
    CHECK(iperf3_bidir_overlap_seconds(from_ten_seconds(11 * kSecond, 1.0, 2.0, 2.0)) == 0.0);
    // The span is the peer's number: below 0, NaN or absurdly long it still gives a figure in range.
    for (const double span : {-1.0, std::numeric_limits<double>::quiet_NaN()}) {
        CHECK(iperf3_bidir_overlap_seconds(from_ten_seconds(11 * kSecond, 1.0, 0.0, span)) == 0.0);
    }
    for (const double span : {1e300, std::numeric_limits<double>::infinity()}) {
        CHECK(iperf3_bidir_overlap_seconds(from_ten_seconds(11 * kSecond, 1.0, 0.0, span)) == 1.0);
    }
}
