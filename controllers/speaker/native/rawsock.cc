// A packet socket (AF_PACKET, SOCK_RAW) bound to one interface, for the speaker's ARP/NDP responder.
// Frames are read on the Node.js event loop (uv_poll on the non-blocking socket) and handed to a JS callback as
// Buffers with the kernel's arrival time (SO_TIMESTAMPNS, ms since the epoch): a process frozen and resumed reads
// frames that queued meanwhile, and must be able to tell. Frames this host sent are skipped. Errors are thrown as JS
// errors carrying the errno text. A socket error (ENETDOWN when the interface goes down, even for a moment) makes
// libuv stop the poll for good: it is read (which clears it), reported, and the poll started again, so the socket
// answers once the kernel re-attaches it to the interface that came back up.
#include <napi.h>
#include <uv.h>

#include <arpa/inet.h>
#include <linux/filter.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <ctime>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

constexpr int kMaxFramesPerWakeup = 64;  // then yield to the loop; the poll fires again while data is queued
constexpr size_t kFrameBuffer = 65536;

Napi::Value Throw(Napi::Env env, const std::string& what, int err) {
  Napi::Error e = Napi::Error::New(env, what + ": " + std::strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  e.ThrowAsJavaScriptException();
  return env.Undefined();
}

// Index and MAC of an interface, via ioctl on any socket.
bool InterfaceInfo(const std::string& name, int* index, unsigned char mac[6], int* err) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return *err = errno, false;
  struct ifreq ifr {};
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  bool ok = ioctl(fd, SIOCGIFINDEX, &ifr) == 0;
  if (ok) *index = ifr.ifr_ifindex;
  ok = ok && ioctl(fd, SIOCGIFHWADDR, &ifr) == 0;
  if (ok) std::memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
  *err = errno;
  close(fd);
  return ok;
}

// The Buffer argument of a method, when present and its length is a multiple of `unit` (and `exact` if not 0).
bool BufferArg(const Napi::CallbackInfo& info, size_t unit, size_t exact, const char* usage, Napi::Buffer<uint8_t>* out) {
  if (info.Length() >= 1 && info[0].IsBuffer()) {
    *out = info[0].As<Napi::Buffer<uint8_t>>();
    if (out->Length() % unit == 0 && (exact == 0 || out->Length() == exact)) return true;
  }
  Napi::TypeError::New(info.Env(), usage).ThrowAsJavaScriptException();
  return false;
}

class RawSocket : public Napi::ObjectWrap<RawSocket> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "RawSocket",
                       {InstanceMethod("send", &RawSocket::Send), InstanceMethod("addMembership", &RawSocket::AddMembership),
                        InstanceMethod("dropMembership", &RawSocket::DropMembership), InstanceMethod("setFilter", &RawSocket::SetFilter),
                        InstanceMethod("close", &RawSocket::Close), InstanceAccessor("index", &RawSocket::Index, nullptr),
                        InstanceAccessor("mac", &RawSocket::Mac, nullptr)});
  }

  // new RawSocket(interfaceName: string, ethertype: number, onFrame: (frame: Buffer, arrivedAtMs: number) => void,
  //               onSocketError: (message: string, errno: number, resumed: boolean) => void)
  explicit RawSocket(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RawSocket>(info), frame_(kFrameBuffer) {
    Napi::Env env = info.Env();
    if (info.Length() < 4 || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsFunction() || !info[3].IsFunction()) {
      Napi::TypeError::New(env, "RawSocket(interface: string, ethertype: number, onFrame: function, onSocketError: function)").ThrowAsJavaScriptException();
      return;
    }
    const std::string name = info[0].As<Napi::String>();
    const uint16_t protocol = htons(static_cast<uint16_t>(info[1].As<Napi::Number>().Uint32Value()));
    int err = 0;
    if (!InterfaceInfo(name, &index_, mac_, &err)) {
      Throw(env, "interface " + name, err);
      return;
    }
    fd_ = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
    if (fd_ < 0) {
      Throw(env, "socket(AF_PACKET)", errno);
      return;
    }
    struct sockaddr_ll addr {};
    addr.sll_family = AF_PACKET;
    addr.sll_protocol = protocol;
    addr.sll_ifindex = index_;
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
      err = errno;
      CloseFd();
      Throw(env, "bind to " + name, err);
      return;
    }
    const int on = 1;
    if (setsockopt(fd_, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) < 0) {
      err = errno;
      CloseFd();
      Throw(env, "setsockopt(SO_TIMESTAMPNS)", err);
      return;
    }
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    poll_ = new uv_poll_t;
    poll_->data = this;
    uv_poll_init(loop, poll_, fd_);
    uv_poll_start(poll_, UV_READABLE, OnReadable);
    onFrame_ = Napi::Persistent(info[2].As<Napi::Function>());
    onSocketError_ = Napi::Persistent(info[3].As<Napi::Function>());
    context_ = std::make_unique<Napi::AsyncContext>(env, "switchboard:rawsocket");
    Ref();  // an open socket stays alive while its poll handle refers to it
  }

  ~RawSocket() override { Stop(); }

 private:
  static void OnReadable(uv_poll_t* handle, int status, int) {
    auto* self = static_cast<RawSocket*>(handle->data);
    if (!self) return;
    if (status == 0) self->Drain();
    else self->Recover();
  }

  // libuv stopped the poll on POLLERR. Reading SO_ERROR clears the socket's pending error; with none pending the
  // error is not one this code knows, and polling again could spin, so the socket stays stopped (resumed: false).
  void Recover() {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = 0;
    const bool resumed = err != 0 && uv_poll_start(poll_, UV_READABLE, OnReadable) == 0;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    const int reported = err != 0 ? err : EIO;
    onSocketError_.MakeCallback(Value(), {Napi::String::New(env, std::strerror(reported)), Napi::Number::New(env, reported), Napi::Boolean::New(env, resumed)}, *context_);
    if (env.IsExceptionPending()) napi_fatal_exception(env, env.GetAndClearPendingException().Value());
  }

  void Drain() {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    for (int i = 0; i < kMaxFramesPerWakeup && fd_ >= 0; i++) {
      struct sockaddr_ll from {};
      struct iovec iov {frame_.data(), frame_.size()};
      alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(struct timespec))];
      struct msghdr msg {};
      msg.msg_name = &from;
      msg.msg_namelen = sizeof from;
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      ssize_t n = recvmsg(fd_, &msg, MSG_DONTWAIT);
      if (n < 0) return;  // EAGAIN: drained; other errors: the next wakeup tries again
      if (from.sll_pkttype == PACKET_OUTGOING) continue;
      Napi::Buffer<uint8_t> buf = Napi::Buffer<uint8_t>::Copy(env, frame_.data(), static_cast<size_t>(n));
      onFrame_.MakeCallback(Value(), {buf, Napi::Number::New(env, ArrivalMs(&msg))}, *context_);
      if (env.IsExceptionPending()) {
        // The callback threw: report it as an uncaught exception rather than lose it in the loop.
        napi_fatal_exception(env, env.GetAndClearPendingException().Value());
        return;
      }
    }
  }

  // The kernel's receive time of a frame, ms since the epoch; the current time if the kernel gave none.
  static double ArrivalMs(struct msghdr* msg) {
    struct timespec ts {};
    bool found = false;
    for (struct cmsghdr* c = CMSG_FIRSTHDR(msg); c != nullptr; c = CMSG_NXTHDR(msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
        std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
        found = true;
      }
    }
    if (!found) clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
  }

  Napi::Value Send(const Napi::CallbackInfo& info) {
    Napi::Buffer<uint8_t> frame;
    if (fd_ < 0) return Throw(info.Env(), "send", EBADF);
    if (!BufferArg(info, 1, 0, "send(frame: Buffer)", &frame)) return info.Env().Undefined();
    ssize_t n = send(fd_, frame.Data(), frame.Length(), 0);
    if (n < 0) return Throw(info.Env(), "send", errno);
    return Napi::Number::New(info.Env(), static_cast<double>(n));
  }

  Napi::Value Membership(const Napi::CallbackInfo& info, int option) {
    Napi::Buffer<uint8_t> mac;
    if (fd_ < 0) return Throw(info.Env(), "membership", EBADF);
    if (!BufferArg(info, 1, 6, "membership(mac: 6-byte Buffer)", &mac)) return info.Env().Undefined();
    struct packet_mreq mreq {};
    mreq.mr_ifindex = index_;
    mreq.mr_type = PACKET_MR_MULTICAST;
    mreq.mr_alen = 6;
    std::memcpy(mreq.mr_address, mac.Data(), 6);
    if (setsockopt(fd_, SOL_PACKET, option, &mreq, sizeof mreq) < 0) return Throw(info.Env(), "setsockopt(PACKET_MEMBERSHIP)", errno);
    return info.Env().Undefined();
  }
  Napi::Value AddMembership(const Napi::CallbackInfo& info) { return Membership(info, PACKET_ADD_MEMBERSHIP); }
  Napi::Value DropMembership(const Napi::CallbackInfo& info) { return Membership(info, PACKET_DROP_MEMBERSHIP); }

  // setFilter(program: Buffer): classic BPF, 8 bytes per instruction in host byte order.
  Napi::Value SetFilter(const Napi::CallbackInfo& info) {
    Napi::Buffer<uint8_t> program;
    if (fd_ < 0) return Throw(info.Env(), "setFilter", EBADF);
    if (!BufferArg(info, sizeof(sock_filter), 0, "setFilter(program: Buffer of 8-byte instructions)", &program)) return info.Env().Undefined();
    std::vector<sock_filter> code(program.Length() / sizeof(sock_filter));
    std::memcpy(code.data(), program.Data(), program.Length());
    struct sock_fprog fprog {};
    fprog.len = static_cast<unsigned short>(code.size());
    fprog.filter = code.data();
    if (setsockopt(fd_, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof fprog) < 0) return Throw(info.Env(), "setsockopt(SO_ATTACH_FILTER)", errno);
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (fd_ >= 0) {
      Stop();
      Unref();
    }
    return info.Env().Undefined();
  }

  Napi::Value Index(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), index_); }
  Napi::Value Mac(const Napi::CallbackInfo& info) { return Napi::Buffer<unsigned char>::Copy(info.Env(), mac_, 6); }

  void Stop() {
    if (poll_) {
      uv_poll_stop(poll_);
      poll_->data = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
    }
    CloseFd();
  }

  void CloseFd() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

  int fd_ = -1;
  int index_ = 0;
  unsigned char mac_[6] = {};
  uv_poll_t* poll_ = nullptr;
  std::vector<uint8_t> frame_;
  Napi::FunctionReference onFrame_;
  Napi::FunctionReference onSocketError_;
  std::unique_ptr<Napi::AsyncContext> context_;
};

// interfaceInfo(name: string): { index: number, mac: Buffer }
Napi::Value GetInterfaceInfo(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(info.Env(), "interfaceInfo(name: string)").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  const std::string name = info[0].As<Napi::String>();
  int index = 0, err = 0;
  unsigned char mac[6];
  if (!InterfaceInfo(name, &index, mac, &err)) return Throw(info.Env(), "interface " + name, err);
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("index", Napi::Number::New(info.Env(), index));
  o.Set("mac", Napi::Buffer<unsigned char>::Copy(info.Env(), mac, 6));
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("RawSocket", RawSocket::Define(env));
  exports.Set("interfaceInfo", Napi::Function::New(env, GetInterfaceInfo));
  return exports;
}

}  // namespace

NODE_API_MODULE(switchboard_rawsock, Init)
