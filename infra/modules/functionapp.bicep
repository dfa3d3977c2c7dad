// The function app on Flex Consumption: Python 3.11, the user-assigned identity for storage,
// Key Vault, telemetry and the FHIR server, and no keys or connection strings anywhere in
// its settings. The app settings below plus intakeSettings are every setting the code reads
// in Azure (shared/platform/names.py, checked by tests/infra).
param name string
param planName string
param location string
param tags object
param identityId string
param identityClientId string
param storageAccountName string
param keyVaultUri string
param appInsightsConnectionString string
param workspaceId string
@description('Subnet for VNet integration; empty: none.')
param subnetId string
param maximumInstanceCount int
param instanceMemoryMB int
@description('INTAKE_* and FHIR_* settings, by name.')
param intakeSettings object

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

var platformSettings = {
  // Identity-based AzureWebJobsStorage: the host and shared/platform/storage.py both read these.
  AzureWebJobsStorage__accountName: account.name
  AzureWebJobsStorage__blobServiceUri: account.properties.primaryEndpoints.blob
  AzureWebJobsStorage__queueServiceUri: account.properties.primaryEndpoints.queue
  AzureWebJobsStorage__tableServiceUri: account.properties.primaryEndpoints.table
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  // DefaultAzureCredential (Key Vault, FHIR server) picks the user-assigned identity by this.
  AZURE_CLIENT_ID: identityClientId
  KEY_VAULT_URL: keyVaultUri
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Flex Consumption zone redundancy exists only in some regions; the stages' state is in zone-redundant storage and every queue message is retried on another instance.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_17: partners authenticate with Entra ID tokens or API keys checked by the app (docs/security.md); client certificates are not a channel they use.
  // checkov:skip=CKV_AZURE_222: partners reach the ingestion API over the internet; private networking closes storage and Key Vault, not the API.
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales out on demand from zero; always-ready instances would bill around the clock, and queued work survives an instance loss.
  // checkov:skip=CKV_AZURE_213: health-check-driven instance replacement is an App Service feature Flex Consumption does not use; GET /api/health reports storage reachability for external probes.
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    virtualNetworkSubnetId: empty(subnetId) ? null : subnetId
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${account.properties.primaryEndpoints.blob}app-package'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: [for setting in items(union(platformSettings, intakeSettings)): {
        name: setting.key
        value: setting.value
      }]
    }
  }
}

// No publishing passwords: azd deploys with the signed-in identity.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'scm'
  properties: {
    allow: false
  }
}

resource appDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: app
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        category: 'FunctionAppLogs'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

output name string = app.name
output defaultHostName string = app.properties.defaultHostName
