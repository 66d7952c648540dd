--- A service for cli_spec.lua (`moonrpc serve FILE`): replies with binary
-- and text strings, to check how `moonrpc call` prints them.
--   Bytes.Blob {}    -> {png = "\x89PNG\r\n\x1a\n\0", text = "héllo\n", tab = "a\tb"}
--   Bytes.Echo args  -> args
return {
  Bytes = {
    __metadata = "group=bytes&weight=2",
    Blob = function() return { png = "\x89PNG\r\n\x1a\n\0", text = "héllo\n", tab = "a\tb" } end,
    Echo = function(_, args) return args end,
  },
}
