-- mod_auth_opensupp: Prosody asks opensupp whether a password is right and whether a user exists.
--
-- Written by `opensupp xmpp setup` next to the Prosody config it writes; opensupp ships it because
-- Debian's prosody-modules has no HTTP authentication module (docs: README, "XMPP").
--
--   authentication = "opensupp"
--   opensupp_auth_url = "http://127.0.0.1:8000/xmpp/auth"   -- opensupp's endpoint (loopback only)
--   opensupp_auth_secret = "..."                             -- HTTP Basic, user "prosody"
--   opensupp_auth_timeout = 5                                -- seconds
--
-- The password travels in a POST body (never in a URL) to POST <url>/check_password, with the
-- client's address so opensupp counts attempts as its sign-in page does. The answer is "true" or
-- "false". user_exists (POST <url>/user_exists) is cached briefly; Prosody may ask it outside an
-- async context (a component writing to an offline user), where a short blocking call is made.
-- Accounts and passwords are managed through opensupp's partner API, never through XMPP.

local new_sasl = require "util.sasl".new;
local async = require "util.async";
local http = require "net.http";
local http_util = require "util.http";
local base64 = require "util.encodings".base64.encode;

local host = module.host;
local url = module:get_option_string("opensupp_auth_url");
local secret = module:get_option_string("opensupp_auth_secret");
local timeout = module:get_option_number("opensupp_auth_timeout", 5);
if not url or not secret then
	error("mod_auth_opensupp needs opensupp_auth_url and opensupp_auth_secret (opensupp xmpp setup writes them)");
end
url = url:gsub("/+$", "");
local authorization = "Basic " .. base64("prosody:" .. secret);

local EXISTS_SECONDS, MISSING_SECONDS = 60, 5;
local exists_cache = {};
local exists_count = 0;

local function headers_for(body)
	return {
		["Content-Type"] = "application/x-www-form-urlencoded";
		["Content-Length"] = tostring(#body);
		["Authorization"] = authorization;
	};
end

-- In an async context (stanza and SASL processing): net.http, which does not block the server.
local function post_async(path, body)
	local wait, done = async.waiter();
	local code, content;
	http.request(url .. path, { method = "POST"; body = body; headers = headers_for(body) },
		function (response_body, response_code)
			content, code = response_body, response_code;
			done();
		end);
	wait();
	return code, content;
end

-- Outside one: LuaSocket, blocking for at most `timeout` seconds.
local function post_blocking(path, body)
	local socket = require "socket";
	local socket_http = require "socket.http";
	local ltn12 = require "ltn12";
	local chunks = {};
	local ok, code = socket_http.request {
		url = url .. path; method = "POST"; headers = headers_for(body);
		source = ltn12.source.string(body); sink = ltn12.sink.table(chunks);
		create = function ()
			local connection = socket.tcp();
			connection:settimeout(timeout);
			return connection;
		end;
	};
	if not ok then return nil, code; end
	return code, table.concat(chunks);
end

local function post(path, fields)
	local body = http_util.formencode(fields);
	if async.ready() then
		return post_async(path, body);
	end
	return post_blocking(path, body);
end

local provider = {};

local function check(username, password, address)
	local code, answer = post("/check_password", {
		{ name = "user", value = username }; { name = "server", value = host };
		{ name = "pass", value = password }; { name = "ip", value = address or "" };
	});
	if code ~= 200 then
		module:log("warn", "opensupp did not check the password of %s: HTTP %s", username, tostring(code));
		return nil, "opensupp could not check the password";
	end
	return answer == "true";
end

function provider.test_password(username, password)
	return check(username, password, nil);
end

function provider.user_exists(username)
	local now = os.time();
	local cached = exists_cache[username];
	if cached and cached.until_ > now then
		return cached.exists;
	end
	local code, answer = post("/user_exists", {
		{ name = "user", value = username }; { name = "server", value = host };
	});
	if code ~= 200 then
		module:log("warn", "opensupp did not say whether %s exists: HTTP %s", username, tostring(code));
		return nil, "opensupp could not be asked";
	end
	local exists = answer == "true";
	if exists_count > 10000 then exists_cache, exists_count = {}, 0; end
	if not cached then exists_count = exists_count + 1; end
	exists_cache[username] = { exists = exists; until_ = now + (exists and EXISTS_SECONDS or MISSING_SECONDS) };
	return exists;
end

function provider.set_password()
	return nil, "Passwords are set through opensupp's partner API";
end

function provider.create_user()
	return nil, "Agents are created through opensupp's partner API";
end

function provider.delete_user()
	return nil, "Agents are deleted through opensupp's partner API";
end

function provider.users()
	return function () return nil; end;
end

function provider.get_sasl_handler(session)
	local address = session and session.ip;
	return new_sasl(host, {
		plain_test = function (_, username, password)
			return check(username, password, address), true;
		end;
	});
end

module:provides("auth", provider);
