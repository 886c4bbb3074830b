#include "server/web_server.hpp"

#include <fmt/ostream.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <nlohmann/json.hpp>
#include <optional>
#include <restinio/all.hpp>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/web_api.hpp"
#include "net/address.hpp"
#include "net/clock.hpp"
#include "net/random.hpp"
#include "server/admission.hpp"
#include "server/log_limiter.hpp"
#include "server/session_registry.hpp"

namespace speed::server {

namespace web_assets {
extern const std::string_view page_html;
extern const std::string_view speedtest_js;
extern const std::string_view speedtest_css;
extern const std::string_view chart_js;
}  // namespace web_assets

namespace {

// --http-max-connections-per-host: RESTinio's IP blocker and connection state listener in one. A connection
// counts for its host from its "accepted" notice to its "closed" one; RESTinio gives the first in the same
// handler as the inspect() that let it in, so no other connection is inspected in between and the count
// inspect() reads is exact. A connection over the cap is closed at accept, before anything is read or served.
// On the web thread only, like everything RESTinio calls here.
class connection_gate {
  public:
    connection_gate(std::shared_ptr<server_context> context, std::size_t max_per_host)
        : context_(std::move(context)), counts_(max_per_host) {}

    restinio::ip_blocker::inspection_result_t inspect(
        const restinio::ip_blocker::incoming_info_t& incoming) noexcept {
        const auto peer = net::plain_address(incoming.remote_endpoint().address());
        const host_key host = host_of(peer);
        if (counts_.allows(host)) {
            return restinio::ip_blocker::allow();
        }
        context_->metrics.web_connection_refused();
        log_limited(logs_, log_kind::refusal, spdlog::level::warn,
                    "browser test connection from {} closed: {} HTTP connections from {} are open "
                    "(--http-max-connections-per-host)",
                    peer.to_string(), counts_.max_per_host(), host.to_string());
        return restinio::ip_blocker::deny();
    }

    void state_changed(const restinio::connection_state::notice_t& notice) noexcept {
        const auto cause = notice.cause();
        if (restinio::holds_alternative<restinio::connection_state::accepted_t>(cause)) {
            counts_.opened(notice.connection_id(),
                           host_of(net::plain_address(notice.remote_endpoint().address())));
        } else if (restinio::holds_alternative<restinio::connection_state::closed_t>(cause)) {
            counts_.closed(notice.connection_id());
        }
    }

  private:
    host_key host_of(const asio::ip::address& peer) const {
        return make_host_key(net::address_bytes(peer), context_->config.admission);
    }

    std::shared_ptr<server_context> context_;
    connections_per_host counts_;
    log_limiter logs_;  // the web thread's own (the context's is the control thread's)
};

// Single-threaded (the web thread, speedsrv-web, of server/main.cpp), with RESTinio's connection count
// limiter and the per-host cap.
struct web_traits : restinio::default_single_thread_traits_t {
    static constexpr bool use_connection_count_limiter = true;
    using ip_blocker_t = connection_gate;
    using connection_state_listener_t = connection_gate;
};
using http_server = restinio::http_server_t<web_traits>;

constexpr std::string_view kContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
// Receiver bins of the upload figures (web-api: interval_seconds).
constexpr std::uint64_t kUploadIntervalNs = 100'000'000;
// A download's body goes out as pieces of this size, all views into one shared block of random bytes: no
// request allocates its N bytes. RESTinio writes up to 64 pieces per write (2 MiB).
constexpr std::size_t kDownloadPieceBytes = 32 * 1024;
constexpr std::size_t kRandomBlockBytes = 1 << 20;
// How often expired and idle sessions are looked for.
constexpr auto kSweepInterval = std::chrono::milliseconds(250);

std::string_view name_of(web_session_end end) {
    switch (end) {
        case web_session_end::deleted:
            return "deleted";
        case web_session_end::deadline:
            return "deadline";
        case web_session_end::idle:
            return "idle";
        case web_session_end::shutdown:
            return "shutdown";
    }
    return "?";
}

struct web_session {
    web_session(std::string session_id, asio::ip::address from, admission_control::slot held,
                net::clock::time_point now, net::clock::time_point ends, std::size_t max_intervals)
        : id(std::move(session_id)),
          peer(from),
          slot(std::move(held)),
          started(now),
          deadline(ends),
          last_request(now),
          uploads(kUploadIntervalNs, max_intervals) {}

    std::string id;
    asio::ip::address peer;  // IPv4-mapped addresses as IPv4
    admission_control::slot slot;
    net::clock::time_point started;
    net::clock::time_point deadline;
    net::clock::time_point last_request;
    std::uint64_t bytes_charged = 0;  // downloads (at request) and uploads (at arrival) against --max-bytes
    std::uint64_t downloaded = 0;
    std::size_t downloads_in_flight = 0;
    web::upload_bins uploads;
};

// Gives a download's place among its session's parallel downloads back when RESTinio drops the response's
// completion callback: called after the last write, or destroyed with a connection that closed before.
struct download_in_flight {
    std::weak_ptr<web_session> owner;
    ~download_in_flight() {
        if (auto s = owner.lock()) {
            --s->downloads_in_flight;
        }
    }
};

std::string short_id(const std::string& id) {
    return id.substr(0, 8);
}

}  // namespace

struct web_server::state {
    state(std::shared_ptr<server_context> ctx, web_config cfg)
        : context(std::move(ctx)),
          config(std::move(cfg)),
          random_block(kRandomBlockBytes),
          sweep(*context->web_context) {
        net::fill_random(random_block);
    }

    std::shared_ptr<server_context> context;
    web_config config;
    std::vector<std::uint8_t> random_block;
    std::unordered_map<std::string, std::shared_ptr<web_session>> sessions;
    std::unique_ptr<http_server> http;
    asio::ip::tcp::endpoint bound;
    asio::steady_timer sweep;
    bool closed = false;

    std::chrono::milliseconds session_lifetime() const {
        const auto tests =
            std::chrono::milliseconds(2 * static_cast<std::int64_t>(context->config.limits.max_duration_ms));
        return std::min(context->config.max_session_time, tests + config.limits.session_slack);
    }

    void end_session(const std::shared_ptr<web_session>& s, web_session_end why) {
        const double seconds = std::chrono::duration<double>(net::clock::now() - s->started).count();
        spdlog::info(
            "web session {} from {} ended ({}): {} bytes downloaded, {} bytes uploaded in {} bodies, {:.1f} "
            "s",
            short_id(s->id), s->peer.to_string(), name_of(why), s->downloaded, s->uploads.bytes_total(),
            s->uploads.bodies(), seconds);
        context->metrics.web_session_ended(why, s->downloaded, s->uploads.bytes_total());
        give_back(std::move(s->slot));
        sessions.erase(s->id);
    }

    // Admission is the control thread's (no locks): a slot goes back there to be released.
    void give_back(admission_control::slot slot) {
        struct returned {
            std::shared_ptr<server_context>
                owner;  // keeps the admission control alive until the slot is gone
            admission_control::slot slot;
        };
        asio::post(context->control_context, [held = std::make_shared<returned>(returned{
                                                  context, std::move(slot)})] { held->slot.release(); });
    }

    // Ends every session and stops serving. On the web thread (or after it stopped).
    void close() {
        if (closed) {
            return;
        }
        closed = true;
        sweep.cancel();
        std::vector<std::shared_ptr<web_session>> live;
        for (const auto& [id, s] : sessions) {
            live.push_back(s);
        }
        for (const auto& s : live) {
            end_session(s, web_session_end::shutdown);
        }
        if (http) {
            http->close_sync();
        }
    }

    void sweep_expired() {
        const auto now = net::clock::now();
        std::vector<std::pair<std::shared_ptr<web_session>, web_session_end>> ended;
        for (const auto& [id, s] : sessions) {
            if (now >= s->deadline) {
                ended.emplace_back(s, web_session_end::deadline);
            } else if (s->downloads_in_flight == 0 && now - s->last_request >= context->config.idle_timeout) {
                ended.emplace_back(s, web_session_end::idle);
            }
        }
        for (const auto& [s, why] : ended) {
            end_session(s, why);
        }
    }
};

namespace {

using request = restinio::request_handle_t;
using state_ptr = std::shared_ptr<web_server::state>;

template <class Builder>
void common_headers(Builder& response) {
    response.append_header("Content-Security-Policy", std::string(kContentSecurityPolicy));
    response.append_header("X-Content-Type-Options", "nosniff");
    response.append_header("Referrer-Policy", "no-referrer");
}

template <class Builder>
void api_headers(const web_server::state& s, Builder& response) {
    common_headers(response);
    response.append_header("Cache-Control", "no-store");
    if (!s.config.cors_origin.empty()) {
        response.append_header("Access-Control-Allow-Origin", s.config.cors_origin);
        response.append_header("Vary", "Origin");
    }
}

restinio::request_handling_status_t reply(const web_server::state& s, const request& req,
                                          restinio::http_status_line_t status,
                                          std::optional<nlohmann::json> body, std::string_view allow = {}) {
    auto response = req->create_response(std::move(status));
    api_headers(s, response);
    if (!allow.empty()) {
        response.append_header("Allow", std::string(allow));
    }
    if (body) {
        response.append_header(restinio::http_field::content_type, "application/json");
        response.set_body(body->dump());
    }
    return response.done();
}

restinio::request_handling_status_t error(const web_server::state& s, const request& req,
                                          restinio::http_status_line_t status, std::string text,
                                          std::string_view allow = {}) {
    return reply(s, req, std::move(status), nlohmann::json{{"error", std::move(text)}}, allow);
}

restinio::request_handling_status_t not_found(const web_server::state& s, const request& req) {
    return error(s, req, restinio::status_not_found(), "no such resource or session");
}

restinio::request_handling_status_t static_file(const request& req, std::string_view bytes,
                                                std::string_view content_type) {
    auto response = req->create_response(restinio::status_ok());
    common_headers(response);
    response.append_header(restinio::http_field::content_type, std::string(content_type));
    response.set_body(restinio::const_buffer(bytes.data(), bytes.size()));
    return response.done();
}

// Answers POST /api/sessions once the control thread has decided on admission (`admitted` holds a slot, or
// `refusal` says why not).
void finish_create(web_server::state& s, const request& req, const asio::ip::address& peer,
                   admission_control::slot admitted, const std::string& refusal) {
    if (!admitted.held()) {
        return void(error(s, req, restinio::status_service_unavailable(), refusal));
    }
    if (s.closed) {
        s.give_back(std::move(admitted));
        return void(error(s, req, restinio::status_service_unavailable(), "the server is shutting down"));
    }
    std::array<std::uint8_t, web::kSessionIdBytes> random{};
    net::fill_random(random);
    const auto now = net::clock::now();
    const auto lifetime = s.session_lifetime();
    const auto max_intervals =
        static_cast<std::size_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(lifetime).count() /
                                     static_cast<std::int64_t>(kUploadIntervalNs) +
                                 1);
    auto created = std::make_shared<web_session>(web::session_id_text(random), peer, std::move(admitted), now,
                                                 now + lifetime, max_intervals);
    s.sessions.emplace(created->id, created);
    spdlog::info("web session {} from {} started (ends within {:.0f} s)", short_id(created->id),
                 peer.to_string(), std::chrono::duration<double>(lifetime).count());
    const auto& limits = s.context->config.limits;
    nlohmann::json body{
        {"session", created->id},
        {"max_duration_seconds", static_cast<double>(limits.max_duration_ms) / 1000.0},
        {"max_bytes", limits.max_bytes == 0 ? nlohmann::json(nullptr) : nlohmann::json(limits.max_bytes)},
        {"max_streams", limits.max_streams},
        {"upload_chunk_max_bytes", s.config.limits.upload_chunk_max_bytes},
        {"download_request_max_bytes", s.config.limits.download_request_max_bytes},
        {"interval_seconds", static_cast<double>(kUploadIntervalNs) / 1e9},
        {"server", {{"software", "speedsrv"}, {"version", SPEED_VERSION}}},
    };
    reply(s, req, restinio::status_created(), std::move(body));
}

// POST /api/sessions: admission is decided on the control thread (it owns the caps, without locks), the
// answer is given back on this one.
restinio::request_handling_status_t create_session(const state_ptr& self, const request& req) {
    const auto peer = net::plain_address(req->remote_endpoint().address());
    asio::post(self->context->control_context, [self, req, peer] {
        auto& context = *self->context;
        admission_control::decision decision;
        if (context.shutting_down) {
            context.metrics.refused(refusal_reason::shutting_down);
            decision.refusal = "the server is shutting down";
        } else {
            decision = context.admission.try_enter(admission_control::stage::session,
                                                   context.admission.host_of(net::address_bytes(peer)));
            if (decision.admitted()) {
                context.metrics.admitted(true);
            } else {
                log_limited(context, log_kind::refusal, spdlog::level::warn,
                            "web session from {} refused: {}", peer.to_string(), decision.refusal);
                context.metrics.refused(refusal_reason::session_admission);
            }
        }
        struct answer {
            std::shared_ptr<server_context>
                owner;  // keeps the admission control alive until the slot is gone
            admission_control::decision decision;
        };
        auto decided = std::make_shared<answer>(answer{self->context, std::move(decision)});
        asio::post(*context.web_context, [self, req, peer, decided] {
            finish_create(*self, req, peer, std::move(decided->decision.granted), decided->decision.refusal);
        });
    });
    return restinio::request_accepted();
}

// Charges `bytes` to the session's budget (--max-bytes); false when it would exceed it.
bool charge(const web_server::state& s, web_session& session, std::uint64_t bytes) {
    const std::uint64_t max = s.context->config.limits.max_bytes;
    if (max != 0 && (session.bytes_charged > max || bytes > max - session.bytes_charged)) {
        return false;
    }
    session.bytes_charged += bytes;
    return true;
}

restinio::request_handling_status_t download(web_server::state& s, const request& req,
                                             const std::shared_ptr<web_session>& session) {
    const auto bytes =
        web::parse_download_bytes(req->header().query(), s.config.limits.download_request_max_bytes);
    if (!bytes) {
        return error(
            s, req, restinio::status_bad_request(),
            fmt::format("give bytes=N with N from 0 to {}", s.config.limits.download_request_max_bytes));
    }
    if (session->downloads_in_flight >= s.context->config.limits.max_streams) {
        s.context->metrics.refused(refusal_reason::caps);
        return error(s, req, restinio::status_too_many_requests(),
                     fmt::format("at most {} downloads at once", s.context->config.limits.max_streams));
    }
    if (!charge(s, *session, *bytes)) {
        s.context->metrics.refused(refusal_reason::caps);
        return error(s, req, restinio::status_forbidden(),
                     "the session's byte budget (--max-bytes) is used up");
    }
    session->downloaded += *bytes;
    ++session->downloads_in_flight;
    auto in_flight = std::make_shared<download_in_flight>();
    in_flight->owner = session;
    auto response = req->create_response<restinio::user_controlled_output_t>(restinio::status_ok());
    api_headers(s, response);
    response.append_header(restinio::http_field::content_type, "application/octet-stream");
    response.set_content_length(static_cast<std::size_t>(*bytes));
    // Pieces walk through the block, so that consecutive ones differ.
    std::uint64_t left = *bytes;
    std::size_t offset = 0;
    while (left > 0) {
        const std::size_t piece =
            static_cast<std::size_t>(std::min<std::uint64_t>(left, kDownloadPieceBytes));
        response.append_body(restinio::const_buffer(s.random_block.data() + offset, piece));
        left -= piece;
        offset = (offset + kDownloadPieceBytes) % (kRandomBlockBytes - kDownloadPieceBytes + 1);
    }
    return response.done([in_flight](const asio::error_code&) {});
}

restinio::request_handling_status_t upload_figures(web_server::state& s, const request& req,
                                                   const web_session& session) {
    nlohmann::json intervals = nlohmann::json::array();
    for (const auto& i : session.uploads.intervals()) {
        intervals.push_back({{"start", i.start}, {"end", i.end}, {"bytes", i.bytes}});
    }
    return reply(s, req, restinio::status_ok(),
                 nlohmann::json{{"interval_seconds", session.uploads.interval_seconds()},
                                {"bytes_total", session.uploads.bytes_total()},
                                {"bodies", session.uploads.bodies()},
                                {"intervals", std::move(intervals)}});
}

restinio::request_handling_status_t handle(const state_ptr& self, const request& req) {
    auto& s = *self;
    const auto method = req->header().method();
    const auto route = web::parse_route(req->header().path());
    const bool get = method == restinio::http_method_get();
    const bool post = method == restinio::http_method_post();
    if (method == restinio::http_method_options() && !s.config.cors_origin.empty() &&
        route.target != web::endpoint::none) {
        auto response = req->create_response(restinio::status_no_content());
        api_headers(s, response);
        response.append_header("Access-Control-Allow-Methods", "GET, POST, DELETE");
        response.append_header("Access-Control-Allow-Headers", "Content-Type");
        response.append_header("Access-Control-Max-Age", "600");
        return response.done();
    }
    switch (route.target) {
        case web::endpoint::page:
        case web::endpoint::script:
        case web::endpoint::style:
        case web::endpoint::chart: {
            if (!get) {
                return error(s, req, restinio::status_method_not_allowed(), "only GET", "GET");
            }
            switch (route.target) {
                case web::endpoint::page:
                    return static_file(req, web_assets::page_html, "text/html; charset=utf-8");
                case web::endpoint::script:
                    return static_file(req, web_assets::speedtest_js, "text/javascript");
                case web::endpoint::style:
                    return static_file(req, web_assets::speedtest_css, "text/css");
                default:
                    return static_file(req, web_assets::chart_js, "text/javascript");
            }
        }
        case web::endpoint::sessions:
            if (!post) {
                return error(s, req, restinio::status_method_not_allowed(), "only POST", "POST");
            }
            return create_session(self, req);
        case web::endpoint::none:
        case web::endpoint::unknown_session:
            return not_found(s, req);
        default:
            break;
    }
    // A session's endpoints: the session must be live and the request come from its creator's address.
    const auto found = s.sessions.find(std::string(route.id));
    if (found == s.sessions.end() ||
        found->second->peer != net::plain_address(req->remote_endpoint().address())) {
        return not_found(s, req);
    }
    const auto session = found->second;
    session->last_request = net::clock::now();
    switch (route.target) {
        case web::endpoint::session:
            if (method != restinio::http_method_delete()) {
                return error(s, req, restinio::status_method_not_allowed(), "only DELETE", "DELETE");
            }
            s.end_session(session, web_session_end::deleted);
            return reply(s, req, restinio::status_no_content(), std::nullopt);
        case web::endpoint::ping:
            if (!get) {
                return error(s, req, restinio::status_method_not_allowed(), "only GET", "GET");
            }
            return reply(s, req, restinio::status_no_content(), std::nullopt);
        case web::endpoint::download:
            if (!get) {
                return error(s, req, restinio::status_method_not_allowed(), "only GET", "GET");
            }
            return download(s, req, session);
        case web::endpoint::upload:
            if (get) {
                return upload_figures(s, req, *session);
            }
            if (!post) {
                return error(s, req, restinio::status_method_not_allowed(), "only GET or POST", "GET, POST");
            }
            if (!charge(s, *session, req->body().size())) {
                s.context->metrics.refused(refusal_reason::caps);
                return error(s, req, restinio::status_forbidden(),
                             "the session's byte budget (--max-bytes) is used up");
            }
            // The body has fully arrived (RESTinio hands it over whole): counted at this moment.
            session->uploads.add(static_cast<std::uint64_t>(net::now_ns()), req->body().size());
            return reply(s, req, restinio::status_no_content(), std::nullopt);
        default:
            return not_found(s, req);
    }
}

void schedule_sweep(const state_ptr& self) {
    self->sweep.expires_after(kSweepInterval);
    self->sweep.async_wait([weak = std::weak_ptr<web_server::state>(self)](const asio::error_code& ec) {
        auto s = weak.lock();
        if (ec || !s || s->closed) {
            return;
        }
        s->sweep_expired();
        schedule_sweep(s);
    });
}

}  // namespace

web_server::web_server(std::shared_ptr<server_context> context, web_config config)
    : state_(std::make_shared<state>(std::move(context), std::move(config))) {}

web_server::~web_server() {
    // The web thread has stopped by now (speedsrv stops it before destroying the server).
    state_->close();
}

void web_server::start() {
    const auto& limits = state_->config.limits;
    const auto& endpoint = state_->config.endpoint;
    std::weak_ptr<state> weak = state_;
    auto gate = std::make_shared<connection_gate>(state_->context, limits.max_connections_per_host);
    auto settings = restinio::server_settings_t<web_traits>{}
                        .port(endpoint.port())
                        .protocol(endpoint.protocol())
                        .address(endpoint.address())
                        .max_parallel_connections(limits.max_connections)
                        .ip_blocker(gate)
                        .connection_state_listener(gate)
                        .read_next_http_message_timelimit(limits.request_timeout)
                        .handle_request_timeout(limits.request_timeout)
                        .write_http_response_timelimit(limits.write_timeout)
                        .incoming_http_msg_limits(restinio::incoming_http_msg_limits_t{}
                                                      .max_url_size(limits.max_url_bytes)
                                                      .max_field_name_size(limits.max_header_name_bytes)
                                                      .max_field_value_size(limits.max_header_value_bytes)
                                                      .max_field_count(limits.max_header_fields)
                                                      .max_body_size(limits.upload_chunk_max_bytes))
                        .acceptor_post_bind_hook([weak](asio::ip::tcp::acceptor& acceptor) {
                            if (auto s = weak.lock()) {
                                s->bound = acceptor.local_endpoint();
                            }
                        })
                        .request_handler([weak](const request& req) -> restinio::request_handling_status_t {
                            auto s = weak.lock();
                            if (!s || s->closed) {
                                return restinio::request_rejected();
                            }
                            return handle(s, req);
                        });
    state_->http = std::make_unique<http_server>(restinio::external_io_context(*state_->context->web_context),
                                                 std::move(settings));
    state_->http->open_sync();
    schedule_sweep(state_);
}

asio::ip::tcp::endpoint web_server::local_endpoint() const {
    return state_->bound;
}

void web_server::shutdown() {
    // Called on the control thread while the web thread runs: the web thread ends its sessions and closes.
    asio::post(*state_->context->web_context, [self = state_] { self->close(); });
}

}  // namespace speed::server
