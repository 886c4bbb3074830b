// net/udp_socket.hpp's batch_receiver against real sockets on loopback.
#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstdint>

#include "net/udp_socket.hpp"

namespace {

// A UDP socket on 127.0.0.1 with a port of its own and the smallest receive buffer the kernel grants, that
// reports its overflow counter (SO_RXQ_OVFL); closed with the object.
class small_socket {
  public:
    small_socket() : fd_(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0)) {
        REQUIRE(fd_ >= 0);
        const int smallest = 1;  // rounded up to the kernel's minimum (a few KiB)
        const int on = 1;
        REQUIRE(::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &smallest, sizeof smallest) == 0);
        REQUIRE(::setsockopt(fd_, SOL_SOCKET, SO_RXQ_OVFL, &on, sizeof on) == 0);
        address_.sin_family = AF_INET;
        address_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd_, reinterpret_cast<const sockaddr*>(&address_), sizeof address_) == 0);
        socklen_t length = sizeof address_;
        REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&address_), &length) == 0);
    }
    ~small_socket() { ::close(fd_); }
    small_socket(const small_socket&) = delete;
    small_socket& operator=(const small_socket&) = delete;

    int fd() const { return fd_; }

    // Sends `count` datagrams of 1000 bytes to this socket from `sender`.
    void receive_from(int sender, int count) const {
        const std::array<std::uint8_t, 1000> payload{};
        for (int i = 0; i < count; ++i) {
            REQUIRE(::sendto(sender, payload.data(), payload.size(), 0,
                             reinterpret_cast<const sockaddr*>(&address_),
                             sizeof address_) == static_cast<ssize_t>(payload.size()));
        }
    }

  private:
    int fd_;
    sockaddr_in address_{};
};

}  // namespace

// One batch_receiver serves every flow of a data thread. A socket's overflow counter must not be reported
// for another socket read after it: it was, and a flow without drops then put another flow's counter in its
// FEEDBACK, whose changes the sender's rate control takes for congestion.
TEST_CASE("batch_receiver reports a socket's overflow counter for that socket's batch only",
          "[udp][socket]") {
    const int sender = ::socket(AF_INET, SOCK_DGRAM, 0);
    REQUIRE(sender >= 0);
    small_socket overflowing;
    small_socket quiet;
    overflowing.receive_from(sender, 200);  // far more than a few KiB hold: most are dropped
    quiet.receive_from(sender, 1);

    speed::net::batch_receiver receiver;
    std::error_code error;
    // The kernel stamps each queued datagram with the drops before it and attaches the counter only when
    // that is not 0: the datagrams queued before the buffer filled carry none. Read them all, then one more.
    int batches = 0;
    while (receiver.receive(overflowing.fd(), error) > 0 && ++batches < 1000) {
        CHECK_FALSE(receiver.socket_drops().has_value());
    }
    REQUIRE_FALSE(error);
    overflowing.receive_from(sender, 1);
    REQUIRE(receiver.receive(overflowing.fd(), error) == 1);
    REQUIRE(receiver.socket_drops().has_value());
    CHECK(*receiver.socket_drops() > 100);  // of the 200, a few KiB's worth fitted
    // The next socket's batch says nothing of the first socket's drops.
    REQUIRE(receiver.receive(quiet.fd(), error) == 1);
    CHECK_FALSE(receiver.socket_drops().has_value());
    ::close(sender);
}
