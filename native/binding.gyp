# node-gyp project for the r3kernels addon (see README.md). Built by native/build.mjs against the
# running Node's own headers; Node-API only, so one build serves every Node ≥ the NAPI_VERSION floor.
{
  "targets": [
    {
      "target_name": "r3kernels",
      "sources": ["src/r3kernels.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_DISABLE_CPP_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED"
      ],
      # -O3 for the dot-product loop; no contraction into FMA so doubles round as in reference.ts.
      "cflags_cc": ["-O3", "-ffp-contract=off", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "xcode_settings": {
        "GCC_OPTIMIZATION_LEVEL": "3",
        "OTHER_CPLUSPLUSFLAGS": ["-ffp-contract=off"],
        "MACOSX_DEPLOYMENT_TARGET": "11.0"
      },
      "msvs_settings": {
        "VCCLCompilerTool": { "Optimization": 2, "FloatingPointModel": 0 }
      }
    }
  ]
}
