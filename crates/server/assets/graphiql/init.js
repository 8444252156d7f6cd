// Mounts GraphiQL on #graphiql. Queries and mutations go to /graphql over
// HTTP; subscriptions use the graphql-ws protocol on /graphql/ws, a client
// for which is compiled into the GraphiQL bundle. Whatever is in the headers
// editor is sent with each HTTP request and as the WebSocket's
// connection_init payload.
(function () {
  'use strict';

  var socket = new URL('/graphql/ws', window.location.href);
  socket.protocol = socket.protocol === 'https:' ? 'wss:' : 'ws:';

  var fetcher = GraphiQL.createFetcher({
    url: '/graphql',
    subscriptionUrl: socket.href,
  });

  // GraphiQL shows these only when it has no saved tabs; headers are kept
  // across reloads only if "Persist headers" is switched on in its settings.
  var defaultHeaders = JSON.stringify({ Authorization: 'Bearer <token>' }, null, 2);

  ReactDOM.createRoot(document.getElementById('graphiql')).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      isHeadersEditorEnabled: true,
      defaultHeaders: defaultHeaders,
      defaultEditorToolsVisibility: 'headers',
    })
  );
})();
