// Mounts GraphiQL on #graphiql. Queries and mutations go to /graphql over
// HTTP; subscriptions use the graphql-ws protocol on /graphql/ws, a client
// for which is compiled into the GraphiQL bundle. Whatever is in the headers
// editor is sent with each HTTP request and as the WebSocket's
// connection_init payload.
//
// A gateway started with --demo answers /graphiql/demo.json with its demo
// users and their tokens: the page then starts signed in as the first and
// offers every one in a picker, so that switching from an agency's account
// manager to an SME owner shows what each may see. Any other gateway
// answers 404 there, and the page holds no token.
(function () {
  'use strict';

  var socket = new URL('/graphql/ws', window.location.href);
  socket.protocol = socket.protocol === 'https:' ? 'wss:' : 'ws:';
  var root = ReactDOM.createRoot(document.getElementById('graphiql'));

  function mount(token, key) {
    var auth = token ? { Authorization: 'Bearer ' + token } : undefined;
    var fetcher = GraphiQL.createFetcher({
      url: '/graphql',
      subscriptionUrl: socket.href,
      headers: auth,
      wsConnectionParams: auth,
    });
    // GraphiQL shows these only when it has no saved tabs; headers are kept
    // across reloads only if "Persist headers" is switched on in its
    // settings.
    var defaultHeaders = token ? '{}' : JSON.stringify({ Authorization: 'Bearer <token>' }, null, 2);
    root.render(
      React.createElement(GraphiQL, {
        key: key,
        fetcher: fetcher,
        isHeadersEditorEnabled: true,
        defaultHeaders: defaultHeaders,
        defaultEditorToolsVisibility: token ? false : 'headers',
      })
    );
  }

  function picker(users) {
    var bar = document.getElementById('demo');
    var label = document.createElement('label');
    label.textContent = 'Demo user ';
    var select = document.createElement('select');
    select.id = 'demo-user';
    users.forEach(function (u, i) {
      var option = document.createElement('option');
      option.value = String(i);
      option.textContent = u.label + ' (' + u.email + ')';
      select.appendChild(option);
    });
    select.addEventListener('change', function () {
      var u = users[Number(select.value)];
      mount(u.token, 'user-' + select.value);
    });
    label.appendChild(select);
    bar.appendChild(label);
    bar.hidden = false;
  }

  fetch('/graphiql/demo.json', { cache: 'no-store' })
    .then(function (r) {
      return r.ok ? r.json() : [];
    })
    .catch(function () {
      return [];
    })
    .then(function (users) {
      if (Array.isArray(users) && users.length > 0) {
        picker(users);
        mount(users[0].token, 'user-0');
      } else {
        mount(null, 'anonymous');
      }
    });
})();
