# The speaker's packet-socket addon. Build: npx node-gyp rebuild --directory controllers/speaker/native
{
  "targets": [
    {
      "target_name": "switchboard_rawsock",
      "sources": ["rawsock.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra"],
      "cflags_cc!": ["-fno-exceptions"]
    }
  ]
}
