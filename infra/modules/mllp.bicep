// The MLLP listener (intake mllp) on Azure Container Apps with TCP ingress: one container
// app, always on (senders expect a listener), one exposed port per listener. Deployed only
// when main.bicep gets an image (mllpImage). External TCP ingress needs an environment in
// a virtual network: the private-networking subnet when there is one, else a small VNet
// of its own. The listener reaches storage as the app's user-assigned identity.
param name string
param location string
param tags object
param image string
// [{ "port": 2575, "partner": "lab-a", "enhanced": false }, ...] (mllp_listener/config.py)
@minLength(1)
param listeners array
param identityId string
param identityClientId string
param storageAccountName string
param keyVaultUri string
param workspaceId string
param httpMaxBytes int
// Empty: a VNet of its own. Otherwise a subnet delegated to Microsoft.App/environments.
param subnetId string = ''
// Sender addresses (CIDR) allowed to connect; empty: any.
param allowedIpRanges array = []
// The registry the image is pulled from with the identity (it needs AcrPull there); empty:
// a public image.
param registryServer string = ''
// Optional: a Key Vault secret holding the listener's PEM certificate and key (MLLP over
// TLS); it is mounted at /config/tls.pem for listeners that name it.
param tlsSecretName string = ''

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: last(split(workspaceId, '/'))
}

resource nsg 'Microsoft.Network/networkSecurityGroups@2024-05-01' = if (empty(subnetId)) {
  name: '${name}-nsg'
  location: location
  tags: tags
}

resource vnet 'Microsoft.Network/virtualNetworks@2024-05-01' = if (empty(subnetId)) {
  name: '${name}-vnet'
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        '10.50.0.0/24'
      ]
    }
    subnets: [
      {
        name: 'mllp'
        properties: {
          addressPrefix: '10.50.0.0/27'
          networkSecurityGroup: {
            id: nsg.id
          }
          delegations: [
            {
              name: 'container-apps'
              properties: {
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
        }
      }
    ]
  }
}

resource environment 'Microsoft.App/managedEnvironments@2024-03-01' = {
  name: '${name}-env'
  location: location
  tags: tags
  properties: {
    appLogsConfiguration: {
      destination: 'log-analytics'
      logAnalyticsConfiguration: {
        customerId: workspace.properties.customerId
        sharedKey: workspace.listKeys().primarySharedKey
      }
    }
    vnetConfiguration: {
      infrastructureSubnetId: empty(subnetId) ? vnet.properties.subnets[0].id : subnetId
      internal: false
    }
    workloadProfiles: [
      {
        name: 'Consumption'
        workloadProfileType: 'Consumption'
      }
    ]
  }
}

var restrictions = [for (range, i) in allowedIpRanges: {
  name: 'sender-${i}'
  action: 'Allow'
  ipAddressRange: range
}]
var ports = [for l in listeners: int(l.port)]
var tlsSecrets = empty(tlsSecretName) ? [] : [
  {
    name: 'tls'
    keyVaultUrl: '${keyVaultUri}secrets/${tlsSecretName}'
    identity: identityId
  }
]

resource listener 'Microsoft.App/containerApps@2024-03-01' = {
  name: name
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    environmentId: environment.id
    workloadProfileName: 'Consumption'
    configuration: {
      activeRevisionsMode: 'Single'
      registries: empty(registryServer) ? [] : [
        {
          server: registryServer
          identity: identityId
        }
      ]
      ingress: {
        external: true
        transport: 'tcp'
        targetPort: ports[0]
        exposedPort: ports[0]
        additionalPortMappings: [for port in skip(ports, 1): {
          external: true
          targetPort: port
          exposedPort: port
        }]
        ipSecurityRestrictions: restrictions
      }
      secrets: concat([
        {
          name: 'listeners'
          value: string({ listeners: listeners })
        }
      ], tlsSecrets)
    }
    template: {
      containers: [
        {
          name: 'mllp'
          image: image
          args: [
            '--config'
            '/config/listeners.json'
          ]
          resources: {
            cpu: json('0.5')
            memory: '1Gi'
          }
          env: [
            { name: 'AzureWebJobsStorage__accountName', value: account.name }
            { name: 'AzureWebJobsStorage__blobServiceUri', value: account.properties.primaryEndpoints.blob }
            { name: 'AzureWebJobsStorage__queueServiceUri', value: account.properties.primaryEndpoints.queue }
            { name: 'AzureWebJobsStorage__tableServiceUri', value: account.properties.primaryEndpoints.table }
            { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
            { name: 'AzureWebJobsStorage__clientId', value: identityClientId }
            { name: 'AZURE_CLIENT_ID', value: identityClientId }
            { name: 'KEY_VAULT_URL', value: keyVaultUri }
            { name: 'INTAKE_ENVIRONMENT', value: 'production' }
            { name: 'INTAKE_HTTP_MAX_BYTES', value: string(httpMaxBytes) }
          ]
          volumeMounts: [
            {
              volumeName: 'config'
              mountPath: '/config'
            }
          ]
        }
      ]
      volumes: [
        {
          name: 'config'
          storageType: 'Secret'
          secrets: concat([
            {
              secretRef: 'listeners'
              path: 'listeners.json'
            }
          ], empty(tlsSecretName) ? [] : [
            {
              secretRef: 'tls'
              path: 'tls.pem'
            }
          ])
        }
      ]
      scale: {
        minReplicas: 1
        maxReplicas: 1
      }
    }
  }
}

output address string = environment.properties.staticIp
