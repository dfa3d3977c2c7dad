// Key Vault for webhook signing secrets (the app creates, rotates and deletes them) and any
// secret an operator adds. Access is Azure RBAC only; deleted secrets are recoverable and
// cannot be purged early.
param name string
param location string
param tags object
param privateNetworking bool
param allowedIpRanges array
param workspaceId string

// Private with no listed ranges: reachable only through its private endpoint.
var publicAccess = privateNetworking && empty(allowedIpRanges) ? 'Disabled' : 'Enabled'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: the firewall denies by default with enablePrivateNetworking; without it only Entra ID identities with a Key Vault role get in (RBAC, no access policies). checkov cannot evaluate the condition.
  // checkov:skip=CKV_AZURE_189: public network access is disabled with enablePrivateNetworking (unless allowedIpRanges are listed), a condition checkov cannot evaluate.
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: publicAccess
    networkAcls: {
      defaultAction: privateNetworking ? 'Deny' : 'Allow'
      bypass: 'AzureServices'
      ipRules: [for range in allowedIpRanges: {
        value: range
      }]
    }
  }
}

resource vaultDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: vault
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        categoryGroup: 'audit'
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

output name string = vault.name
output uri string = vault.properties.vaultUri
